"""Every operation of `KeyturnClient` and `AsyncKeyturnClient` against a real `keyturn serve`.

Each test runs four times: sync and async SDK, on SQLite and on PostgreSQL. A
test is written once; `Sdk` runs a call with whichever client the test got:
``sdk(kt.tokens.get(token_id))`` is a plain value in sync mode and a
coroutine that `Sdk` runs in async mode. One admin client per server comes
from the real CLI; everything else is set up through the SDK itself.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import jwt as pyjwt
import pytest

from keyturn.client import ClientCredentials, OAuthToken, PasswordCredentials, TokenManager
from keyturn.client.api import (
    AsyncKeyturnClient,
    AuthenticationError,
    BadRequestError,
    ClientWithSecret,
    ConflictError,
    Introspection,
    IssuedToken,
    KeyturnClient,
    LegacyToken,
    NotFoundError,
    PermissionDeniedError,
    Token,
    TokenPage,
)
from keyturn.core.errors import (
    InvalidClientError,
    InvalidScopeError,
    InvalidTargetError,
    UnauthorizedClientError,
)
from tests.client.test_readme_examples import OWN_API, python_examples, readme_section
from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.e2e

_ADMINS: dict[str, dict[str, Any]] = {}
_USERS: set[str] = set()


def admin_credentials(live_server: LiveServer) -> dict[str, Any]:
    """One admin client per server, registered with the real CLI (it takes seconds)."""
    if live_server.url not in _ADMINS:
        _ADMINS[live_server.url] = live_server.create_client(
            "--name", "sdk-admin", "--scope", "keyturn:admin"
        )
    return _ADMINS[live_server.url]


class Sdk:
    """Makes clients of one kind and runs their calls to completion."""

    def __init__(self, mode: str, server: LiveServer, runner: asyncio.Runner) -> None:
        self.mode = mode
        self.server = server
        self.runner = runner
        self.made: list[KeyturnClient | AsyncKeyturnClient] = []

    def __call__(self, result: Any) -> Any:
        """The value of a call: as is (sync), or the coroutine run to its end (async)."""
        if self.mode == "async":
            return self.runner.run(result)
        return result

    def client(self, **options: Any) -> Any:
        cls = KeyturnClient if self.mode == "sync" else AsyncKeyturnClient
        made = cls(self.server.url, **options)
        self.made.append(made)
        return made

    def admin(self, **options: Any) -> Any:
        creds = admin_credentials(self.server)
        return self.client(
            client_id=creds["client_id"], client_secret=creds["client_secret"], **options
        )

    def items(self, pager: Any) -> list[Token]:
        if self.mode == "sync":
            return list(pager)

        async def collect() -> list[Token]:
            return [token async for token in pager]

        return self.runner.run(collect())

    def pages(self, pager: Any) -> list[TokenPage]:
        if self.mode == "sync":
            return list(pager.pages())

        async def collect() -> list[TokenPage]:
            return [page async for page in pager.pages()]

        return self.runner.run(collect())

    def close(self) -> None:
        for made in self.made:
            if isinstance(made, AsyncKeyturnClient):
                self.runner.run(made.close())
            else:
                made.close()


@pytest.fixture(params=["sync", "async"])
def sdk(request: pytest.FixtureRequest, live_server: LiveServer) -> Iterator[Sdk]:
    with asyncio.Runner() as runner:
        driver = Sdk(request.param, live_server, runner)
        yield driver
        driver.close()


Service = tuple[str, str]


@pytest.fixture
def make_service(live_server: LiveServer) -> Iterator[Callable[..., Service]]:
    """Registers clients through the (sync) SDK: ``(client_id, client_secret)``."""
    creds = admin_credentials(live_server)
    admin = KeyturnClient(
        live_server.url, client_id=creds["client_id"], client_secret=creds["client_secret"]
    )

    def make(**fields: Any) -> Service:
        fields.setdefault("scopes", ["read", "write"])
        fields.setdefault("rate_limit", 0)
        created = admin.clients.create(name="sdk-e2e", **fields)
        assert created.client_secret is not None
        return created.client.client_id, created.client_secret

    yield make
    admin.close()


def jti(access_token: str) -> str:
    value: str = pyjwt.decode(access_token, options={"verify_signature": False})["jti"]
    return value


# -- the standard endpoints --------------------------------------------------------------


def test_get_token_in_the_candid_style(sdk: Sdk, make_service: Callable[..., Service]) -> None:
    cid, secret = make_service(scopes=["read"])
    kt = sdk.client()
    token = sdk(kt.get_token(client_id=cid, client_secret=secret, scope="read"))
    assert isinstance(token, OAuthToken)
    assert token.token_type == "Bearer"
    assert token.scope == "read"
    assert token.expires_in == 5 * 3600  # the default lifetime
    assert token.access_token.count(".") == 2
    assert token.access_token not in repr(token)

    with pytest.raises(InvalidClientError) as wrong:
        sdk(kt.get_token(client_id=cid, client_secret="not-the-Secret-42"))
    assert wrong.value.status_code == 401
    assert "not-the-Secret-42" not in f"{wrong.value} {wrong.value!r}"

    # Extra body parameters reach the token endpoint: an audience it refuses.
    options = {"additional_body_parameters": {"audience": "https://nowhere.example"}}
    with pytest.raises(InvalidTargetError):
        sdk(kt.get_token(client_id=cid, client_secret=secret, request_options=options))


def test_revoke_and_introspect_own_tokens(sdk: Sdk, make_service: Callable[..., Service]) -> None:
    cid, secret = make_service()
    kt = sdk.client(client_id=cid, client_secret=secret)
    token = sdk(kt.get_token(scope=["read"]))  # this client's own credentials
    info = sdk(kt.introspect(token.access_token))
    assert isinstance(info, Introspection)
    assert info.active is True
    assert (info.client_id, info.sub, info.scopes) == (cid, cid, ("read",))
    assert info.jti == jti(token.access_token)
    assert info.exp is not None
    assert info.iat is not None
    assert info.exp - info.iat == 5 * 3600
    assert info.token_type == "Bearer"

    assert sdk(kt.revoke(token.access_token, token_type_hint="access_token")) is None
    assert sdk(kt.introspect(token.access_token)) == Introspection(active=False)
    assert sdk(kt.revoke("never-issued")) is None, "RFC 7009 §2.2: unknown tokens are fine"

    # Square's header, and the secret in the body, are accepted as well as Basic.
    square = sdk(kt.get_token())
    assert sdk(kt.introspect(square.access_token, client_auth="client")).active is True
    sdk(kt.revoke(square.access_token, client_auth="client"))
    assert sdk(kt.introspect(square.access_token, client_auth="post")).active is False

    other_id, other_secret = make_service()
    other = sdk.client(client_id=other_id, client_secret=other_secret)
    mine = sdk(kt.get_token())
    with pytest.raises(UnauthorizedClientError):
        sdk(other.revoke(mine.access_token))
    assert sdk(other.introspect(mine.access_token)).active is False, "not other's token"
    assert sdk(kt.introspect(mine.access_token)).active is True


# -- tokens --------------------------------------------------------------------------


def test_list_follows_cursors_and_filters(sdk: Sdk, make_service: Callable[..., Service]) -> None:
    cid, secret = make_service()
    kt = sdk.client(client_id=cid, client_secret=secret)
    issued = [sdk(kt.get_token()).access_token for _ in range(5)]
    admin = sdk.admin()

    pages = sdk.pages(admin.tokens.list(client_id=cid, limit=2))
    assert [len(p.items) for p in pages] == [2, 2, 1]
    assert pages[-1].next_cursor is None
    tokens = sdk.items(admin.tokens.list(client_id=cid, limit=2))
    assert sorted(t.token_id for t in tokens) == sorted(jti(a) for a in issued)
    assert [t.issued_at for t in tokens] == sorted((t.issued_at for t in tokens), reverse=True)
    first = tokens[0]
    assert (first.client_id, first.subject, first.kind, first.active) == (
        cid,
        cid,
        "access_token",
        True,
    )

    pager = admin.tokens.list(client_id=cid, limit=3)
    one = sdk(pager.page())
    assert len(one.items) == 3
    two = sdk(pager.page(one.next_cursor))
    assert len(two.items) == 2
    assert two.next_cursor is None

    sdk(kt.revoke(issued[0]))
    dead = sdk.items(admin.tokens.list(client_id=cid, active=False))
    assert [t.token_id for t in dead] == [jti(issued[0])]
    assert dead[0].revoked_at is not None
    assert len(sdk.items(admin.tokens.list(subject=cid, active=True))) == 4
    assert sdk.items(admin.tokens.list(client_id=cid, subject="someone-else")) == []


def test_create_get_update_delete(sdk: Sdk, make_service: Callable[..., Service]) -> None:
    cid, secret = make_service()
    admin = sdk.admin()
    issued = sdk(admin.tokens.create(client_id=cid, subject="alice", scopes="read", lifetime=600))
    assert isinstance(issued, IssuedToken)
    assert (issued.expires_in, issued.scope, issued.token_type) == (600, "read", "Bearer")
    assert issued.token.subject == "alice"
    assert issued.access_token not in repr(issued)
    claims = pyjwt.decode(issued.access_token, options={"verify_signature": False})
    assert (claims["sub"], claims["scope"], claims["jti"]) == (
        "alice",
        "read",
        issued.token.token_id,
    )

    token_id = issued.token.token_id
    assert sdk(admin.tokens.get(token_id)) == issued.token
    updated = sdk(admin.tokens.update(token_id, scopes=["write"]))
    assert updated.scopes == ("write",)
    later = updated.expires_at + 60
    assert sdk(admin.tokens.update(token_id, expires_at=later)).expires_at == later
    kt = sdk.client(client_id=cid, client_secret=secret)
    assert sdk(kt.introspect(issued.access_token)).scope == "write"

    with pytest.raises(BadRequestError) as refused:
        sdk(admin.tokens.update(token_id, scopes=["admin"]))
    assert (refused.value.status_code, refused.value.error) == (400, "invalid_scope")

    assert sdk(admin.tokens.delete(token_id)) is None
    with pytest.raises(NotFoundError) as gone:
        sdk(admin.tokens.get(token_id))
    assert gone.value.status_code == 404
    assert token_id in (gone.value.description or "")
    with pytest.raises(NotFoundError):
        sdk(admin.tokens.delete(token_id))
    with pytest.raises(NotFoundError):
        sdk(admin.tokens.create(client_id="no-such-client"))
    assert sdk(kt.introspect(issued.access_token)).active is False


def test_revoke_by_value_by_id_and_all(sdk: Sdk, make_service: Callable[..., Service]) -> None:
    cid, secret = make_service()
    kt = sdk.client(client_id=cid, client_secret=secret)
    admin = sdk.admin()
    by_value, by_id = (sdk(kt.get_token()).access_token for _ in range(2))
    assert sdk(admin.tokens.revoke(token=by_value)).token_ids == (jti(by_value),)
    result = sdk(admin.tokens.revoke(token_id=jti(by_id)))
    assert (result.revoked, result.token_ids) == (1, (jti(by_id),))
    with pytest.raises(NotFoundError):
        sdk(admin.tokens.revoke(token="never-issued"))
    with pytest.raises(ValueError, match="exactly one"):
        sdk(admin.tokens.revoke(token=by_value, token_id="x"))

    others = [sdk(kt.get_token()).access_token for _ in range(3)]
    everything = sdk(admin.tokens.revoke_all(client_id=cid, access_tokens_only=True))
    assert sorted(everything.token_ids) == sorted(jti(t) for t in others)
    for token in (by_value, by_id, *others):
        assert sdk(kt.introspect(token)).active is False
    again = sdk(admin.tokens.revoke_all(client_id=cid, subject=cid))
    assert again.revoked == 0
    with pytest.raises(ValueError, match="client_id="):
        sdk(admin.tokens.revoke_all())


def test_renew_inside_the_window_only(sdk: Sdk, make_service: Callable[..., Service]) -> None:
    cid, _ = make_service()
    admin = sdk.admin()
    closing = sdk(admin.tokens.create(client_id=cid, lifetime=60))  # inside the 3600 s window
    renewed = sdk(admin.tokens.renew(closing.token.token_id))
    assert renewed.access_token != closing.access_token
    assert renewed.token.client_id == cid
    assert renewed.expires_in == 5 * 3600
    fresh = sdk(admin.tokens.create(client_id=cid, lifetime=7200))
    with pytest.raises(BadRequestError) as early:
        sdk(admin.tokens.renew(fresh.token.token_id))
    assert "renewed in its last" in str(early.value)


def test_migration_import_exchange_refresh(
    sdk: Sdk, make_service: Callable[..., Service], live_server: LiveServer
) -> None:
    grants = ["client_credentials", "refresh_token", "migration_token"]
    cid, secret = make_service(grant_types=grants)
    admin = sdk.admin()
    legacy = "legacy-" + secrets.token_urlsafe(16)
    expires = int(time.time()) + 3600
    imported = sdk(
        admin.tokens.import_(
            [
                LegacyToken(
                    client_id=cid,
                    token=legacy,
                    subject="alice",
                    scopes=("read", "write"),
                    expires_at=expires,
                )
            ]
        )
    )
    assert imported.imported == 1
    record = sdk(admin.tokens.get(imported.token_ids[0]))
    assert (record.kind, record.subject, record.expires_at) == ("legacy", "alice", expires)
    with pytest.raises(ConflictError):
        sdk(admin.tokens.import_([LegacyToken(client_id=cid, token=legacy, expires_at=expires)]))

    kt = sdk.client(client_id=cid, client_secret=secret)
    assert sdk(kt.introspect(legacy)).sub == "alice", "imported tokens keep working"

    # Square's migration grant: the legacy token, once, for a Keyturn pair.
    exchanged = httpx2.post(
        live_server.token_url,
        data={"grant_type": "migration_token", "migration_token": legacy},
        auth=(cid, secret),
    )
    assert exchanged.status_code == 200, exchanged.text
    pair = OAuthToken.from_dict(exchanged.json())
    assert pair.refresh_token is not None
    assert sdk(kt.introspect(legacy)).active is False

    creds = ClientCredentials(
        client_id=cid, client_secret=secret, token_url=live_server.token_url, token=pair
    )
    with TokenManager(creds) as manager:
        refreshed = sdk(manager.refresh_token() if sdk.mode == "sync" else manager.arefresh_token())
    assert refreshed.refresh_token not in (None, pair.refresh_token), "rotated"
    info = sdk(kt.introspect(refreshed.access_token))
    assert (info.sub, info.scope) == ("alice", "read write")

    digest_import = LegacyToken(
        client_id=cid, token_sha256=secrets.token_hex(32), subject="bob", expires_at=expires
    )
    assert sdk(admin.tokens.import_([digest_import])).imported == 1


def test_reissue_id_token(
    sdk: Sdk, make_service: Callable[..., Service], live_server: LiveServer
) -> None:
    if live_server.url not in _USERS:
        done = live_server.cli("users", "create", "carol", "--password", "correct-horse-9")
        assert done.returncode == 0, done.stderr
        _USERS.add(live_server.url)
    cid, secret = make_service(grant_types=["password", "refresh_token"], scopes=["openid", "read"])
    creds = PasswordCredentials(
        client_id=cid,
        client_secret=secret,
        issuer=live_server.url,  # an ID token is checked against its issuer's keys
        username="carol",
        password="correct-horse-9",
        scopes=("openid", "read"),
    )
    with TokenManager(creds) as manager:
        signed_in = manager.fetch_token()
    assert signed_in.id_token is not None
    assert signed_in.id_token_claims is not None
    assert signed_in.id_token_claims["iss"] == live_server.url
    assert signed_in.refresh_token is not None
    admin = sdk.admin()
    again = sdk(admin.tokens.reissue_id_token(signed_in.refresh_token))
    assert isinstance(again, OAuthToken)
    assert again.id_token not in (None, signed_in.id_token)
    assert again.refresh_token not in (None, signed_in.refresh_token), "the old one is spent"
    claims = pyjwt.decode(again.id_token, options={"verify_signature": False})
    assert (claims["aud"], claims["iss"]) == (cid, live_server.url)
    kt = sdk.client(client_id=cid, client_secret=secret)
    assert sdk(kt.introspect(again.access_token)).scope == "openid read"

    with pytest.raises(NotFoundError):
        sdk(admin.tokens.reissue_id_token("no-such-refresh-token"))
    plain_id, plain_secret = make_service(grant_types=["password", "refresh_token"])
    plain = PasswordCredentials(
        client_id=plain_id,
        client_secret=plain_secret,
        token_url=live_server.token_url,
        username="carol",
        password="correct-horse-9",
        scopes=("read",),
    )
    with TokenManager(plain) as manager:
        no_openid = manager.fetch_token()
    assert no_openid.refresh_token is not None
    with pytest.raises(BadRequestError, match="openid"):
        sdk(admin.tokens.reissue_id_token(no_openid.refresh_token))


def test_purge(sdk: Sdk) -> None:
    purged = sdk(sdk.admin().tokens.purge())
    assert isinstance(purged, int)
    assert purged >= 0


# -- clients ---------------------------------------------------------------------------


def test_client_lifecycle(sdk: Sdk) -> None:
    admin = sdk.admin()
    client_id = "svc-" + secrets.token_hex(4)
    created = sdk(
        admin.clients.create(client_id=client_id, name="svc", scopes=["read"], rate_limit=0)
    )
    assert isinstance(created, ClientWithSecret)
    assert created.client_secret is not None
    assert created.client_secret.startswith("kts_")
    assert created.client_secret not in repr(created)
    assert (created.client.client_id, created.client.scopes) == (client_id, ("read",))
    kt = sdk.client()
    assert sdk(kt.get_token(client_id=client_id, client_secret=created.client_secret))

    with pytest.raises(ConflictError) as exists:
        sdk(admin.clients.create(client_id=client_id))
    assert exists.value.status_code == 409

    changed = sdk(admin.clients.update(client_id, scopes=["read", "write"], rate_limit=5))
    assert (changed.scopes, changed.rate_limit, changed.name) == (("read", "write"), 5, "svc")
    assert sdk(admin.clients.update(client_id, rate_limit=0)).rate_limit == 0
    with pytest.raises(BadRequestError):
        sdk(admin.clients.update(client_id, grant_types=["magic"]))
    assert sdk(admin.clients.get(client_id)).scopes == ("read", "write")

    rotated = sdk(admin.clients.rotate_secret(client_id, overlap=0))
    assert rotated.client_secret not in (None, created.client_secret)
    assert [s.label for s in rotated.client.secrets] == ["current"]
    with pytest.raises(InvalidClientError):
        sdk(kt.get_token(client_id=client_id, client_secret=created.client_secret))
    assert sdk(kt.get_token(client_id=client_id, client_secret=rotated.client_secret))

    listed = sdk(admin.clients.list())
    assert client_id in [c.client_id for c in listed]
    assert sdk(admin.clients.delete(client_id)) is None
    with pytest.raises(NotFoundError):
        sdk(admin.clients.get(client_id))
    with pytest.raises(NotFoundError):
        sdk(admin.clients.rotate_secret(client_id))
    with pytest.raises(NotFoundError):
        sdk(admin.clients.expire_previous_secret(client_id))


def test_secret_rotation_with_an_overlap(sdk: Sdk, make_service: Callable[..., Service]) -> None:
    """The old secret keeps working beside the new one until the overlap ends or is ended."""
    cid, old_secret = make_service(scopes=["read"])
    admin = sdk.admin()
    kt = sdk.client()
    before = sdk(admin.clients.get(cid))
    assert [s.label for s in before.secrets] == ["current"]

    rotated = sdk(admin.clients.rotate_secret(cid, overlap=3600))
    new_secret = rotated.client_secret
    assert new_secret not in (None, old_secret)
    assert new_secret not in repr(rotated)
    current, previous = rotated.client.secrets
    assert (current.label, current.expires_at) == ("current", None)
    assert previous.label == "previous"
    assert previous.created_at == before.secrets[0].created_at
    assert current.created_at is not None
    assert previous.expires_at == current.created_at + 3600
    # Both work, and the listing shows both with the old one's expiry.
    assert sdk(kt.get_token(client_id=cid, client_secret=old_secret))
    assert sdk(kt.get_token(client_id=cid, client_secret=new_secret))
    listed = next(c for c in sdk(admin.clients.list()) if c.client_id == cid)
    assert listed.secrets == (current, previous)

    # Ended early (a leak): only the new secret works.
    ended = sdk(admin.clients.expire_previous_secret(cid))
    assert ended.secrets == (current,)
    with pytest.raises(InvalidClientError):
        sdk(kt.get_token(client_id=cid, client_secret=old_secret))
    assert sdk(kt.get_token(client_id=cid, client_secret=new_secret))
    with pytest.raises(BadRequestError):
        sdk(admin.clients.rotate_secret(cid, overlap=-5))


def test_request_options_reach_the_server(sdk: Sdk) -> None:
    admin = sdk.admin()
    query = {"additional_query_parameters": {"surprise": "1"}}
    with pytest.raises(BadRequestError, match="surprise"):
        sdk(admin.tokens.list(request_options=query).page())
    body = {"additional_body_parameters": {"surprise": True}}
    with pytest.raises(BadRequestError, match="surprise"):
        sdk(admin.clients.create(request_options=body))
    options = {"additional_headers": {"X-Request-Id": "e2e"}, "timeout_in_seconds": 5.0}
    assert isinstance(sdk(admin.clients.list(request_options=options)), list)


# -- the admin token and authorisation ----------------------------------------------------


def test_admin_token_is_reused_and_replaced_when_revoked(sdk: Sdk) -> None:
    admin = sdk.admin()
    for _ in range(3):
        sdk(admin.clients.list())
    manager = admin.token_manager
    assert manager.metrics.snapshot()["fetch_succeeded"] == 1
    own = manager.token.access_token
    assert sdk(admin.tokens.revoke(token=own)).revoked == 1
    sdk(admin.clients.list())  # 401 -> a new token -> the call replayed once
    assert manager.metrics.snapshot()["fetch_succeeded"] == 2
    assert manager.token.access_token != own


ADMIN_CALLS: list[tuple[str, Callable[[Any], Any]]] = [
    ("tokens.list", lambda kt: kt.tokens.list().page()),
    ("tokens.get", lambda kt: kt.tokens.get("x")),
    ("tokens.create", lambda kt: kt.tokens.create(client_id="x")),
    ("tokens.update", lambda kt: kt.tokens.update("x", scopes=["read"])),
    ("tokens.delete", lambda kt: kt.tokens.delete("x")),
    ("tokens.revoke", lambda kt: kt.tokens.revoke(token_id="x")),
    ("tokens.revoke_all", lambda kt: kt.tokens.revoke_all(client_id="x")),
    ("tokens.renew", lambda kt: kt.tokens.renew("x")),
    (
        "tokens.import_",
        lambda kt: kt.tokens.import_([LegacyToken(client_id="x", token="y", expires_at=2**40)]),
    ),
    ("tokens.reissue_id_token", lambda kt: kt.tokens.reissue_id_token("x")),
    ("tokens.purge", lambda kt: kt.tokens.purge()),
    ("clients.list", lambda kt: kt.clients.list()),
    ("clients.get", lambda kt: kt.clients.get("x")),
    ("clients.create", lambda kt: kt.clients.create(name="x")),
    ("clients.update", lambda kt: kt.clients.update("x", name="y")),
    ("clients.delete", lambda kt: kt.clients.delete("x")),
    ("clients.rotate_secret", lambda kt: kt.clients.rotate_secret("x")),
    ("clients.expire_previous_secret", lambda kt: kt.clients.expire_previous_secret("x")),
]


def test_every_admin_call_is_authorised(sdk: Sdk, make_service: Callable[..., Service]) -> None:
    cid, secret = make_service(scopes=["read"])
    anonymous = sdk.client()
    plain_token = sdk(sdk.client().get_token(client_id=cid, client_secret=secret)).access_token
    not_admin = sdk.client(token=plain_token)
    wrong_scope = sdk.client(client_id=cid, client_secret=secret)
    for name, call in ADMIN_CALLS:
        with pytest.raises(AuthenticationError) as none:
            sdk(call(anonymous))
        assert (none.value.status_code, none.value.error) == (401, "invalid_token"), name
        assert none.value.headers["www-authenticate"].startswith("Bearer"), name

        with pytest.raises(PermissionDeniedError) as denied:
            sdk(call(not_admin))
        assert (denied.value.status_code, denied.value.error) == (403, "insufficient_scope"), name
        assert plain_token not in f"{denied.value} {denied.value!r}"

        # Client credentials without the admin scope: the token endpoint says no first.
        with pytest.raises(InvalidScopeError):
            sdk(call(wrong_scope))


def test_the_readme_examples_run_against_a_real_server(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = python_examples(readme_section(OWN_API))
    assert len(examples) == 2
    creds = admin_credentials(live_server)
    monkeypatch.setenv("KEYTURN_URL", live_server.url)
    monkeypatch.setenv("KEYTURN_CLIENT_ID", creds["client_id"])
    monkeypatch.setenv("KEYTURN_CLIENT_SECRET", creds["client_secret"])
    for example in examples:
        exec(compile(example, "README.md", "exec"), {"__name__": "__readme__"})
