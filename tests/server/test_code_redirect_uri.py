"""RFC 6749 §4.1.3: ``redirect_uri`` at the token endpoint (issue 13, finding 7).

REQUIRED if the authorization request included it, and then identical; a
request that relied on the client's one registered URI may leave it out.
"""

from __future__ import annotations

from typing import Any

from tests.server.test_user_grants import (
    REDIRECT,
    Flow,
    authorize_url,
    code_from,
    consent,
    flow,
    login,
    pkce,
)

__all__ = ["flow"]  # the fixture, re-used


def authorize(flow: Flow, challenge: str, *, with_redirect_uri: bool) -> str:
    url = authorize_url(flow, challenge)
    if not with_redirect_uri:
        url = url.replace("redirect_uri=" + REDIRECT.replace(":", "%3A").replace("/", "%2F"), "")
        assert "redirect_uri" not in url
    r = login(flow, url)
    assert r.status_code == 303, r.text
    return code_from(consent(flow, r.headers["location"]))["code"]


def exchange(flow: Flow, code: str, verifier: str, **extra: str) -> Any:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": flow.client_id,
        "code_verifier": verifier,
        **extra,
    }
    return flow.http.post("/oauth/token", data=data)


def test_code_asked_with_redirect_uri_needs_it_at_the_token_endpoint(flow: Flow) -> None:
    verifier, challenge = pkce()
    code = authorize(flow, challenge, with_redirect_uri=True)
    r = exchange(flow, code, verifier)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_grant"
    assert "redirect_uri" in r.json()["error_description"]
    # The refusal did not spend the code: the right request still works.
    r = exchange(flow, code, verifier, redirect_uri=REDIRECT)
    assert r.status_code == 200, r.text


def test_code_asked_without_redirect_uri_may_omit_it(flow: Flow) -> None:
    verifier, challenge = pkce()
    code = authorize(flow, challenge, with_redirect_uri=False)
    r = exchange(flow, code, verifier)
    assert r.status_code == 200, r.text


def test_code_asked_without_redirect_uri_accepts_the_one_it_went_to(flow: Flow) -> None:
    verifier, challenge = pkce()
    code = authorize(flow, challenge, with_redirect_uri=False)
    r = exchange(flow, code, verifier, redirect_uri=REDIRECT)
    assert r.status_code == 200, r.text


def test_code_asked_without_redirect_uri_refuses_another(flow: Flow) -> None:
    verifier, challenge = pkce()
    code = authorize(flow, challenge, with_redirect_uri=False)
    r = exchange(flow, code, verifier, redirect_uri="https://app.example/other")
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_grant"
