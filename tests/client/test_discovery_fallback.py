"""``issuer=`` works with providers that publish only OpenID Connect's document (issue 17, 4)."""

from __future__ import annotations

import httpx2
import pytest

from keyturn.client import ClientCredentials, InvalidResponseError, ServerError, TokenManager
from keyturn.testing import FakeTokenServer

ISSUER = "https://idp.example/tenant/a"


def _manager(server: FakeTokenServer, seen: list[str]) -> TokenManager:
    def record(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        return server(request)

    creds = ClientCredentials(client_id="client-1", client_secret="s3cret-value", issuer=ISSUER)
    return TokenManager(creds, http_client=httpx2.Client(transport=httpx2.MockTransport(record)))


def test_falls_back_to_openid_configuration_for_an_issuer_with_a_path() -> None:
    server = FakeTokenServer(issuer=ISSUER, discovery=("openid-configuration",))
    seen: list[str] = []
    with _manager(server, seen) as manager:
        assert manager.fetch_token().access_token == "at-1"
        manager.fetch_token()  # the metadata is fetched once
    assert seen == [
        "https://idp.example/.well-known/oauth-authorization-server/tenant/a",
        "https://idp.example/tenant/a/.well-known/openid-configuration",
        server.token_url,
        server.token_url,
    ]


def test_rfc_8414_document_first_and_alone_when_present() -> None:
    server = FakeTokenServer(issuer=ISSUER)
    seen: list[str] = []
    with _manager(server, seen) as manager:
        manager.fetch_token()
    assert seen[0].endswith("/.well-known/oauth-authorization-server/tenant/a")
    assert not any("openid-configuration" in url for url in seen)


def test_a_wrong_rfc_8414_document_is_an_error_not_a_reason_to_look_elsewhere() -> None:
    server = FakeTokenServer(issuer=ISSUER)
    original = server.metadata
    server.metadata = lambda: {**original(), "issuer": "https://evil.example"}  # type: ignore[method-assign]
    seen: list[str] = []
    with _manager(server, seen) as manager, pytest.raises(InvalidResponseError, match="issuer"):
        manager.fetch_token()
    assert len(seen) == 1


def test_a_server_error_is_not_taken_for_an_absent_document() -> None:
    def broken(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(500, json={"error": "server_error"})

    creds = ClientCredentials(client_id="c", client_secret="s", issuer=ISSUER)
    client = httpx2.Client(transport=httpx2.MockTransport(broken))
    with TokenManager(creds, http_client=client) as manager, pytest.raises(ServerError):
        manager.fetch_token()
