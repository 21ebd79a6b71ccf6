from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from keyturn.core.authorization import (
    StateMismatchError,
    build_authorization_request,
    parse_redirect,
)
from keyturn.core.credentials import AuthorizationCodeCredentials
from keyturn.core.errors import AccessDeniedError, InvalidResponseError
from keyturn.core.pkce import code_challenge

CREDS = AuthorizationCodeCredentials(
    client_id="c", token_url="https://a.example/t", redirect_uri="https://app/cb", scopes=("x",)
)


def test_url_has_state_pkce_and_extra_params() -> None:
    req = build_authorization_request(
        CREDS, "https://a.example/authorize?tenant=1", additional_params={"prompt": "consent"}
    )
    q = {k: v[0] for k, v in parse_qs(urlsplit(req.url).query).items()}
    assert q["tenant"] == "1"
    assert q["state"] == req.state
    assert len(req.state) >= 32
    assert q["code_challenge_method"] == "S256"
    assert req.code_verifier is not None
    assert q["code_challenge"] == code_challenge(req.code_verifier)
    assert q["prompt"] == "consent"
    assert q["scope"] == "x"
    assert req.code_verifier not in repr(req)


def test_given_state_is_used_and_core_params_cannot_be_overridden() -> None:
    assert build_authorization_request(CREDS, "https://a/x", state="S").state == "S"
    with pytest.raises(ValueError, match="override"):
        build_authorization_request(CREDS, "https://a/x", additional_params={"state": "evil"})


def test_parse_redirect() -> None:
    assert parse_redirect("https://app/cb?code=C&state=S", "S") == "C"
    with pytest.raises(StateMismatchError):
        parse_redirect("https://app/cb?code=C&state=T", "S")
    with pytest.raises(StateMismatchError):
        parse_redirect("https://app/cb?code=C", "S")
    with pytest.raises(AccessDeniedError) as denied:
        parse_redirect("https://app/cb?error=access_denied&error_description=no&state=S", "S")
    assert denied.value.description == "no"
    with pytest.raises(InvalidResponseError, match="iss"):
        parse_redirect("https://app/cb?code=C&state=S&iss=https://evil", "S", issuer="https://a")
    with pytest.raises(InvalidResponseError, match="neither"):
        parse_redirect("https://app/cb?state=S", "S")
