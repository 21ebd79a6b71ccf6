"""Keyturn's SDK against node-oidc-provider, a certified OpenID provider (issue 17, done-means).

The provider runs on a loopback port (``node_oidc/provider.mjs``; installed
once with npm into a cache directory outside the repository). The SDK does what
an application does: client credentials; the authorization code flow with PKCE,
a nonce and ``max_age``, whose ID token is validated with the provider's JWKS;
refresh (with RFC 8707 ``resource``); and revocation, where the provider
refuses to revoke its JWT access tokens (``unsupported_token_type``) and the
user must still end up logged out. Skipped, saying why, without Node.js.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2
import pytest

from keyturn.client import (
    AuthorizationCodeCredentials,
    AuthorizationRequiredError,
    ClientCredentials,
    IdTokenError,
    OAuth2Auth,
    RevocationStatus,
    TokenManager,
)
from keyturn.core.jwt_claims import unverified_claims
from keyturn.testing.ports import free_port

HERE = Path(__file__).parent / "node_oidc"
RESOURCE = "https://api.interop.test"
REDIRECT_URI = "http://127.0.0.1/cb"


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "keyturn-tests" / "node-oidc-provider"


def _install() -> Path | str:
    """The directory with provider.mjs and its node_modules, or why there is none."""
    if shutil.which("node") is None:
        return "Node.js is not installed"
    target = _cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    manifest = (HERE / "package.json").read_bytes()
    installed = target / "package.json"
    module = target / "node_modules" / "oidc-provider"
    if not module.is_dir() or not installed.exists() or installed.read_bytes() != manifest:
        if shutil.which("npm") is None:
            return "npm is not installed (needed once to install oidc-provider)"
        installed.write_bytes(manifest)
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=target,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            return "npm install of oidc-provider failed: " + done.stderr.strip()[-300:]
    shutil.copyfile(HERE / "provider.mjs", target / "provider.mjs")
    return target


@dataclass
class Provider:
    issuer: str
    secret: str


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    where = _install()
    if isinstance(where, str):
        pytest.skip(f"node-oidc-provider interop test skipped: {where}")
    port = free_port()
    secret = secrets.token_urlsafe(32)
    log = tmp_path_factory.mktemp("node-oidc") / "provider.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                "node",
                "provider.mjs",
                "--port",
                str(port),
                # One argument: a secret that starts with "-" (1 in 64 of them)
                # is otherwise taken by node's parseArgs for an option.
                f"--secret={secret}",
                "--redirect-uri",
                REDIRECT_URI,
                "--resource",
                RESOURCE,
            ],
            cwd=where,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while b"ready" not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"node-oidc-provider did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield Provider(issuer, secret)
    finally:
        process.terminate()
        process.wait(timeout=15)


def sign_in(authorization_url: str, login: str = "alice") -> str:
    """Play the user on the provider's development login and consent pages: the redirect."""
    with httpx2.Client(timeout=10) as browser:
        url = authorization_url
        for _ in range(12):
            response = browser.get(url)
            if response.status_code in (302, 303):
                url = urljoin(url, response.headers["location"])
                if url.startswith(REDIRECT_URI):
                    return url
                continue
            assert response.status_code == 200, response.text
            # The interaction page: log in, then consent, by posting its form.
            prompt = "login" if 'name="login"' in response.text else "consent"
            form = {"prompt": prompt, "login": login, "password": "any"}
            posted = browser.post(url, data=form)
            assert posted.status_code in (302, 303), posted.text
            url = urljoin(url, posted.headers["location"])
    raise AssertionError("the provider never redirected back")


def test_client_credentials_and_revocation_of_a_jwt_access_token(provider: Provider) -> None:
    credentials = ClientCredentials(
        client_id="machine",
        client_secret=provider.secret,
        issuer=provider.issuer,
        scopes=("api:read",),
        resource=RESOURCE,
    )
    with TokenManager(credentials) as manager:
        token = manager.get_token()
        claims = unverified_claims(token.access_token)
        assert claims is not None
        assert claims["aud"] == RESOURCE  # RFC 8707: the resource became the audience
        assert manager.get_token() is token  # reused, not fetched again
        result = manager.revoke()
        assert result.access_token is not None
        assert result.access_token.status is RevocationStatus.UNSUPPORTED
        assert manager.token is None
        assert manager.get_token().access_token != token.access_token  # a fresh one


def _web_credentials(provider: Provider) -> AuthorizationCodeCredentials:
    return AuthorizationCodeCredentials(
        client_id="web",
        client_secret=provider.secret,
        issuer=provider.issuer,
        redirect_uri=REDIRECT_URI,
        scopes=("openid", "offline_access", "api:read"),
        resource=RESOURCE,
    )


def test_authorization_code_id_token_refresh_and_logout(provider: Provider) -> None:
    with TokenManager(_web_credentials(provider)) as manager:
        url = manager.get_authorization_url(
            additional_params={"prompt": "consent", "max_age": "300"}
        )
        assert "nonce" in parse_qs(urlsplit(url).query)
        token = manager.fetch_token(manager.parse_redirect(sign_in(url)))
        assert token.id_token_claims is not None
        assert token.id_token_claims["sub"] == "alice"
        assert token.id_token_claims["iss"] == provider.issuer
        assert "auth_time" in token.id_token_claims  # max_age was sent
        assert token.refresh_token is not None

        refreshed = manager.refresh_token()  # with the resource again (RFC 8707 §2.2)
        assert refreshed.access_token != token.access_token
        access_claims = unverified_claims(refreshed.access_token)
        assert access_claims is not None
        assert access_claims["aud"] == RESOURCE
        assert refreshed.id_token_claims is not None
        assert refreshed.id_token_claims["sub"] == "alice"

        # An API call carries the token; the provider's own userinfo is not our API,
        # so any authenticated GET will do to see the header go out.
        with httpx2.Client(auth=OAuth2Auth(manager)) as api:
            sent = api.get(provider.issuer + "/.well-known/openid-configuration")
        assert sent.request.headers["Authorization"] == f"Bearer {refreshed.access_token}"

        result = manager.revoke()  # the access token is a JWT: unsupported_token_type
        assert result.refresh_token is not None
        assert result.refresh_token.status is RevocationStatus.REVOKED
        assert result.access_token is not None
        assert result.access_token.status is RevocationStatus.UNSUPPORTED
        assert result.grant_ended
        assert manager.token is None
        with pytest.raises(AuthorizationRequiredError):
            manager.get_token()  # logged out, not still the revoked user

    # The provider agrees: the revoked refresh token is dead.
    again = TokenManager(_web_credentials(provider).clone_with(token=refreshed))
    with again, pytest.raises(Exception, match="invalid_grant"):
        again.refresh_token()


def test_a_forged_nonce_fails_id_token_validation(provider: Provider) -> None:
    with TokenManager(_web_credentials(provider)) as manager:
        url = manager.get_authorization_url(additional_params={"prompt": "consent"})
        forged = url.replace("nonce=", "nonce=forged")  # the provider echoes what it got
        redirect = sign_in(forged)
        with pytest.raises(IdTokenError, match="nonce"):
            manager.fetch_token(manager.parse_redirect(redirect))
        assert manager.token is None


@pytest.mark.anyio
async def test_async_client_credentials(provider: Provider) -> None:
    credentials = ClientCredentials(
        client_id="machine", client_secret=provider.secret, issuer=provider.issuer
    )
    async with TokenManager(credentials) as manager:
        token = await manager.aget_token()
        assert (await manager.aget_token()) is token
        result = await manager.arevoke()
        assert result.access_token is not None
        assert result.access_token.status is RevocationStatus.UNSUPPORTED


def test_without_node_the_reason_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert _install() == "Node.js is not installed"
