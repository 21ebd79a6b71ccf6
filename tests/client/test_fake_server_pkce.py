"""FakeTokenServer checks PKCE with core's rule, like the real server."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx2
import pytest

from keyturn.core.pkce import Pkce, generate_verifier
from keyturn.testing import FakeTokenServer


@pytest.mark.parametrize(
    ("verifier", "status"),
    [(None, 200), ("another", 400), ("short", 400), ("", 400)],
    ids=["none", "another", "short", "empty"],
)
def test_the_code_needs_its_verifier(verifier: str | None, status: int) -> None:
    if verifier == "another":  # a well-formed verifier of another code's challenge
        verifier = generate_verifier()
    server = FakeTokenServer()
    (client_id, secret), pair = next(iter(server.clients.items())), Pkce.generate()
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": server.redirect_uri,
        "code_challenge": pair.challenge,
        "code_challenge_method": pair.method,
    }
    redirect = server.authorize(f"{server.authorization_url}?{urlencode(query)}")
    code = dict(parse_qsl(urlsplit(redirect).query))["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": server.redirect_uri,
        "code_verifier": pair.verifier if verifier is None else verifier,
    }
    with httpx2.Client(transport=server.transport(), auth=(client_id, secret)) as http:
        response = http.post(server.token_url, data=form)
    assert response.status_code == status, response.text
    if status == 400:
        assert response.json()["error"] == "invalid_grant"
