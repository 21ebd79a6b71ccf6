"""RFC 8707 ``resource``: one or many, on every request, refreshes included (issue 17, 3)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from keyturn.client import TokenManager
from keyturn.core.authorization import build_authorization_request
from keyturn.core.credentials import (
    AuthorizationCodeCredentials,
    ClientAuthMethod,
    ClientCredentials,
)
from keyturn.core.grants import authorization_code_request, grant_request, refresh_request
from keyturn.core.http import HttpRequest
from keyturn.testing import FakeTokenServer

URL = "https://auth.example/oauth/token"
A, B = "https://api.example/a", "https://api.example/b"


def _form(request: HttpRequest) -> dict[str, list[str]]:
    return parse_qs(request.body.decode())


def test_one_resource_on_the_client_credentials_request() -> None:
    creds = ClientCredentials(client_id="c", client_secret="s", token_url=URL, resource=A)
    assert creds.resources == (A,)
    assert _form(grant_request(creds, URL))["resource"] == [A]


def test_many_resources_are_repeated_parameters() -> None:
    creds = ClientCredentials(client_id="c", client_secret="s", token_url=URL, resource=(A, B, A))
    assert creds.resources == (A, B)
    assert _form(grant_request(creds, URL))["resource"] == [A, B]


def test_json_bodies_carry_a_list() -> None:
    creds = ClientCredentials(
        client_id="c",
        client_secret="s",
        token_url=URL,
        resource=(A, B),
        auth_method=ClientAuthMethod.JSON,
    )
    assert json.loads(grant_request(creds, URL).body)["resource"] == [A, B]


def test_refresh_and_code_exchange_send_the_resources_too() -> None:
    creds = AuthorizationCodeCredentials(
        client_id="c",
        client_secret="s",
        token_url=URL,
        authorization_url="https://auth.example/authorize",
        redirect_uri="https://app.example/cb",
        resource=(A, B),
    )
    assert _form(refresh_request(creds, URL, "rt"))["resource"] == [A, B]
    assert _form(authorization_code_request(creds, URL, "code", "v" * 43))["resource"] == [A, B]
    auth = build_authorization_request(creds, "https://auth.example/authorize")
    assert parse_qs(urlsplit(auth.url).query)["resource"] == [A, B]


@pytest.mark.parametrize("bad", ["api", "/relative", "https://api.example/#frag"])
def test_a_resource_must_be_an_absolute_uri_without_fragment(bad: str) -> None:
    with pytest.raises(ValueError, match="absolute URI"):
        ClientCredentials(client_id="c", client_secret="s", token_url=URL, resource=bad)


def test_resources_separate_cached_tokens() -> None:
    one = ClientCredentials(client_id="c", client_secret="s", token_url=URL, resource=A)
    assert one.cache_key() != one.clone_with(resource=B).cache_key()
    assert one.cache_key() == one.clone_with(resource=(A,)).cache_key()


def test_the_manager_sends_them_when_it_refreshes() -> None:
    server = FakeTokenServer()
    bodies: list[dict[str, list[str]]] = []
    server.before_token = lambda request: bodies.append(parse_qs(request.content.decode()))
    manager = TokenManager(
        server.password_credentials(resource=(A, B)),
        http_client=httpx2.Client(transport=server.transport()),
    )
    with manager:
        manager.fetch_token()
        manager.refresh_token()
    assert [b["grant_type"] for b in bodies] == [["password"], ["refresh_token"]]
    assert all(b["resource"] == [A, B] for b in bodies)
