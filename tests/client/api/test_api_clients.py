"""The two thin shells over httpx2.MockTransport: admin token handling, paging, parity."""

from __future__ import annotations

import asyncio
import inspect
import json
import typing
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from keyturn.client.api import (
    AsyncClients,
    AsyncKeyturnClient,
    AsyncTokenPager,
    AsyncTokens,
    AuthenticationError,
    Clients,
    ClientWithSecret,
    KeyturnClient,
    NotFoundError,
    TokenPager,
    Tokens,
    client_ops,
)
from keyturn.core.errors import InvalidScopeError, TransportError

BASE = "https://auth.example"


def token_json(n: int) -> dict[str, Any]:
    return {
        "token_id": f"j{n}",
        "kind": "access_token",
        "client_id": "svc",
        "subject": "svc",
        "scopes": [],
        "audience": [],
        "grant_type": "client_credentials",
        "issued_at": 1000 - n,
        "expires_at": 9000,
        "revoked_at": None,
        "family_id": None,
        "active": True,
    }


class FakeKeyturn:
    """Just enough of a Keyturn server: a token endpoint and a paged, guarded admin API."""

    def __init__(self, total_tokens: int = 5) -> None:
        self.total = total_tokens
        self.issued: list[str] = []
        self.revoked: set[str] = set()
        self.seen: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.seen.append(request)
        path = request.url.path
        if path == "/oauth/token":
            if request.headers.get("Authorization") != "Basic YWRtaW46cHc=":  # admin:pw
                return httpx2.Response(400, json={"error": "invalid_scope"})
            token = f"at-{len(self.issued) + 1}"
            self.issued.append(token)
            body = {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
            return httpx2.Response(200, json=body)
        if path in ("/oauth/revoke", "/oauth/introspect"):
            return httpx2.Response(200, json={"active": False})
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] in self.revoked:
            return httpx2.Response(
                401, json={"error": "invalid_token"}, headers={"WWW-Authenticate": "Bearer"}
            )
        if path == "/admin/v1/tokens" and request.method == "GET":
            query = {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query).items()}
            start = int(query.get("cursor", "0"))
            end = min(self.total, start + int(query.get("limit", "2")))
            items = [token_json(n) for n in range(start, end)]
            cursor = str(end) if end < self.total else None
            return httpx2.Response(200, json={"items": items, "next_cursor": cursor})
        if path == "/admin/v1/clients":
            return httpx2.Response(200, json=[])
        return httpx2.Response(404, json={"error": "invalid_request"})

    def admin_requests(self) -> list[httpx2.Request]:
        return [r for r in self.seen if r.url.path.startswith("/admin/")]


class Both:
    """Builds a sync or an async client and runs its calls, so each test covers both."""

    def __init__(self, mode: str, runner: asyncio.Runner) -> None:
        self.mode = mode
        self.runner = runner
        self.made: list[Any] = []

    def client(self, server: Any, **options: Any) -> Any:
        if self.mode == "sync":
            options.setdefault("http_client", httpx2.Client(transport=httpx2.MockTransport(server)))
            made: Any = KeyturnClient(BASE, **options)
        else:
            options.setdefault(
                "http_client", httpx2.AsyncClient(transport=httpx2.MockTransport(server))
            )
            made = AsyncKeyturnClient(BASE, **options)
        self.made.append(made)
        return made

    def __call__(self, result: Any) -> Any:
        return self.runner.run(result) if self.mode == "async" else result

    def first(self, pager: Any) -> Any:
        if self.mode == "sync":
            return next(iter(pager))

        async def first() -> Any:
            async for item in pager:
                return item

        return self.runner.run(first())

    def items(self, pager: Any) -> list[Any]:
        if self.mode == "sync":
            return list(pager)

        async def collect() -> list[Any]:
            return [item async for item in pager]

        return self.runner.run(collect())


@pytest.fixture(params=["sync", "async"])
def both(request: pytest.FixtureRequest) -> Iterator[Both]:
    with asyncio.Runner() as runner:
        made = Both(request.param, runner)
        yield made
        for client in made.made:
            if isinstance(client, AsyncKeyturnClient):
                runner.run(client._http.aclose())
            else:
                client._http.close()


def test_admin_token_is_fetched_once_and_replaced_after_a_401(both: Both) -> None:
    server = FakeKeyturn()
    kt = both.client(server, client_id="admin", client_secret="pw")
    assert server.seen == [], "nothing is fetched at construction"
    both(kt.clients.list())
    both(kt.clients.list())
    assert server.issued == ["at-1"]
    assert [r.headers["Authorization"] for r in server.admin_requests()] == ["Bearer at-1"] * 2
    token_request = server.seen[0]
    assert b"scope=keyturn%3Aadmin" in token_request.content
    server.revoked.add("at-1")
    both(kt.clients.list())
    assert server.issued == ["at-1", "at-2"]
    assert server.admin_requests()[-1].headers["Authorization"] == "Bearer at-2"


def test_the_pager_fetches_pages_only_as_they_are_needed(both: Both) -> None:
    server = FakeKeyturn(total_tokens=5)
    kt = both.client(server, token="static")
    pager = kt.tokens.list(client_id="svc", limit=2)
    assert server.seen == []
    assert both.first(pager).token_id == "j0"
    assert len(server.admin_requests()) == 1
    assert [t.token_id for t in both.items(pager)] == [f"j{n}" for n in range(5)]
    assert len(server.admin_requests()) == 1 + 3
    page = both(pager.page("4"))
    assert ([t.token_id for t in page.items], page.next_cursor) == (["j4"], None)


def test_the_standard_endpoints_never_carry_the_admin_token(both: Both) -> None:
    server = FakeKeyturn()
    kt = both.client(server, client_id="admin", client_secret="pw")
    both(kt.clients.list())
    both(kt.revoke("some-token"))
    both(kt.introspect("some-token"))
    both(kt.get_token())
    for request in server.seen:
        if request.url.path.startswith("/oauth/"):
            assert request.headers["Authorization"].startswith("Basic "), request.url.path


def test_a_fixed_token_or_none_at_all(both: Both) -> None:
    server = FakeKeyturn()
    both(both.client(server, token="given").clients.list())
    assert server.seen[-1].headers["Authorization"] == "Bearer given"
    assert server.issued == []
    with pytest.raises(AuthenticationError) as info:
        both(both.client(server).clients.list())
    assert "Authorization" not in server.seen[-1].headers
    assert info.value.error == "invalid_token"


def test_the_http_clients_own_auth_is_used_when_given_nothing_else(both: Both) -> None:
    server = FakeKeyturn()
    transport = httpx2.MockTransport(server)

    def bearer(request: httpx2.Request) -> httpx2.Request:
        request.headers["Authorization"] = "Bearer from-the-caller"
        return request

    if both.mode == "sync":
        http: Any = httpx2.Client(transport=transport, auth=bearer)
    else:
        http = httpx2.AsyncClient(transport=transport, auth=bearer)
    kt = both.client(server, http_client=http)
    both(kt.clients.list())
    assert server.seen[-1].headers["Authorization"] == "Bearer from-the-caller"


def test_client_credentials_without_the_admin_scope_are_a_provider_error(both: Both) -> None:
    kt = both.client(FakeKeyturn(), client_id="reader", client_secret="pw")
    with pytest.raises(InvalidScopeError):
        both(kt.tokens.purge())


def test_network_failures_are_transport_errors(both: Both) -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    kt = both.client(refuse, token="t")
    with pytest.raises(TransportError, match=r"GET https://auth\.example/admin/v1/clients failed"):
        both(kt.clients.list())


def test_misuse_is_refused_before_anything_is_sent(both: Both) -> None:
    server = FakeKeyturn()
    with pytest.raises(ValueError, match="client_secret without client_id"):
        both.client(server, client_secret="pw")
    kt = both.client(server)
    with pytest.raises(ValueError, match="get_token needs"):
        both(kt.get_token())
    with pytest.raises(ValueError, match="authenticate as a client"):
        both(kt.revoke("t"))
    assert server.seen == []


def test_repr_names_the_server_and_client_but_no_secret() -> None:
    kt = KeyturnClient(BASE, client_id="admin", client_secret="very-secret", token="tok-value")
    text = repr(kt)
    assert text == "KeyturnClient('https://auth.example', client_id='admin')"
    assert "very-secret" not in text
    assert "very-secret" not in repr(kt.token_manager)
    kt.close()


def test_own_http_clients_are_closed_given_ones_are_not() -> None:
    with KeyturnClient(BASE) as kt:
        own = kt._http
    assert own.is_closed
    given = httpx2.Client()
    with KeyturnClient(BASE, http_client=given):
        pass
    assert not given.is_closed
    given.close()

    async def run() -> tuple[bool, bool]:
        async with AsyncKeyturnClient(BASE) as akt:
            mine = akt._http
        other = httpx2.AsyncClient()
        async with AsyncKeyturnClient(BASE, http_client=other):
            pass
        result = (mine.is_closed, other.is_closed)
        await other.aclose()
        return result

    assert asyncio.run(run()) == (True, False)


@pytest.mark.parametrize(
    ("sync", "aio"),
    [
        (KeyturnClient, AsyncKeyturnClient),
        (Tokens, AsyncTokens),
        (Clients, AsyncClients),
        (TokenPager, AsyncTokenPager),
    ],
)
def test_sync_and_async_offer_the_same_calls(sync: type, aio: type) -> None:
    def public(cls: type) -> dict[str, inspect.Signature]:
        return {
            name: inspect.signature(member).replace(return_annotation=inspect.Signature.empty)
            for name, member in vars(cls).items()
            if callable(member) and (not name.startswith("_") or name == "__init__")
        }

    sync_calls, async_calls = public(sync), public(aio)
    assert sync_calls.keys() == async_calls.keys()
    for name, signature in sync_calls.items():
        if name == "__init__":
            continue  # the HTTP client type differs, on purpose
        assert str(signature) == str(async_calls[name]), name
    for name, member in vars(aio).items():
        if name in ("list", "__init__", "pages") or name.startswith("_"):
            continue
        if callable(member) and aio is not AsyncTokenPager:
            assert inspect.iscoroutinefunction(member), name


def test_methods_bound_to_an_operation_show_its_parameters_and_its_result() -> None:
    """``help()`` and get_type_hints see the operation's parameters less the endpoints the
    shell supplies, not ``*args, **kwargs``; and the call's result, not the `Call`."""
    assert str(inspect.signature(AsyncTokens.get)) == (
        "(self, token_id: 'str', *, request_options: 'RequestOptions | None' = None) -> 'Token'"
    )
    assert list(inspect.signature(KeyturnClient.introspect).parameters)[:2] == ["self", "token"]
    assert typing.get_type_hints(Tokens.list)["return"] is TokenPager
    assert typing.get_type_hints(AsyncTokens.list)["return"] is AsyncTokenPager
    assert typing.get_type_hints(Clients.create)["return"] is ClientWithSecret
    assert typing.get_type_hints(AsyncKeyturnClient.revoke)["return"] is type(None)
    assert Clients.rotate_secret.__doc__ == client_ops.rotate_secret.__doc__


def test_the_request_bodies_are_json_the_server_can_read() -> None:
    server = FakeKeyturn()
    kt = KeyturnClient(
        BASE, token="t", http_client=httpx2.Client(transport=httpx2.MockTransport(server))
    )
    with pytest.raises(NotFoundError):  # the fake has no such route; only the request matters
        kt.tokens.create(
            client_id="c", scopes=["a"], request_options={"additional_headers": {"X-A": "1"}}
        )
    sent = server.seen[-1]
    assert json.loads(sent.content) == {"client_id": "c", "scopes": ["a"]}
    assert sent.headers["X-A"] == "1"
    assert sent.headers["Content-Type"] == "application/json"
    kt.close()
