"""The admin API bounds what it reads (issue 13, finding 4).

The token is checked before a byte of the body is read; a body over
``KEYTURN_MAX_ADMIN_BODY_BYTES`` is refused when declared and when it arrives
(chunked); a body that does not arrive in ``KEYTURN_BODY_TIMEOUT`` is 408; and
every field and list of a request body has a bound. The ASGI tests drive the
real app directly, so they can count what it reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.server.conftest import Harness, make_settings, run_harness
from tests.server.test_admin_api import ADMIN, get_token

MIB = 1024 * 1024


class Exchange:
    """One request through the app's ASGI interface, counting what it reads."""

    def __init__(self, chunks: list[bytes], stall: bool = False) -> None:
        self.chunks = chunks
        self.stall = stall
        self.reads = 0
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        self.reads += 1
        if self.reads <= len(self.chunks):
            more = self.reads < len(self.chunks) or self.stall
            return {"type": "http.request", "body": self.chunks[self.reads - 1], "more_body": more}
        if self.stall:
            await anyio.sleep_forever()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        status: int = self.sent[0]["status"]
        return status

    @property
    def headers(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.sent[0]["headers"]}

    @property
    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))
        return data


def run(
    server: Harness,
    method: str,
    path: str,
    headers: dict[str, str],
    chunks: list[bytes],
    stall: bool = False,
) -> Exchange:
    exchange = Exchange(chunks, stall)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "state": {},
    }
    server.call(server.http.app, scope, exchange.receive, exchange.send)
    return exchange


def admin_header(server: Harness) -> dict[str, str]:
    cid, secret = server.create_client(scopes=[ADMIN, "read"])
    return {"Authorization": "Bearer " + get_token(server, cid, secret)}


JSON_HEADERS = {"Content-Type": "application/json"}


def test_no_token_is_refused_before_the_body_is_read(server: Harness) -> None:
    headers = {**JSON_HEADERS, "Content-Length": str(MIB // 2)}
    done = run(server, "POST", "/admin/v1/tokens", headers, [b"x" * 65536] * 8)
    assert done.status == 401
    assert done.reads == 0
    assert done.headers["www-authenticate"].startswith('Bearer realm="keyturn-admin"')
    assert done.headers["connection"] == "close"
    assert done.body["error"] == "invalid_token"


def test_a_non_admin_token_is_refused_before_the_body_is_read(server: Harness) -> None:
    cid, secret = server.create_client(scopes=["read"])
    headers = {**JSON_HEADERS, "Authorization": "Bearer " + get_token(server, cid, secret)}
    done = run(server, "POST", "/admin/v1/clients", headers, [b"{}"])
    assert done.status == 403
    assert done.reads == 0
    assert done.body["error"] == "insufficient_scope"


@pytest.mark.parametrize("authorised", [True, False])
def test_a_declared_gigabyte_is_413_at_once(server: Harness, authorised: bool) -> None:
    headers = {**JSON_HEADERS, "Content-Length": str(1024 * MIB)}
    if authorised:
        headers.update(admin_header(server))
    done = run(server, "POST", "/admin/v1/tokens", headers, [], stall=True)
    assert done.status == 413
    assert done.reads == 0
    assert done.headers["connection"] == "close"
    assert done.body["error"] == "invalid_request"


@pytest.mark.parametrize("length", ["abc", "-1", "1e9", "²"])
def test_a_malformed_content_length_is_400(server: Harness, length: str) -> None:
    headers = {**JSON_HEADERS, **admin_header(server), "Content-Length": length}
    done = run(server, "POST", "/admin/v1/tokens", headers, [b"{}"])
    assert done.status == 400
    assert done.reads == 0


def test_a_chunked_body_is_cut_off_at_the_limit(server: Harness) -> None:
    headers = {**JSON_HEADERS, **admin_header(server), "Transfer-Encoding": "chunked"}
    chunks = [b" " * 65536] * 64  # 4 MiB, no Content-Length
    done = run(server, "POST", "/admin/v1/tokens", headers, chunks)
    assert done.status == 413
    assert done.reads == MIB // 65536 + 1  # stopped at the first byte over 1 MiB


@pytest.fixture
def impatient(tmp_path: Path, database_url: str) -> Iterator[Harness]:
    yield from run_harness(make_settings(tmp_path, database_url, body_timeout=0.2))


def test_a_body_that_stalls_is_408(impatient: Harness) -> None:
    headers = {**JSON_HEADERS, **admin_header(impatient), "Content-Length": "100"}
    done = run(impatient, "POST", "/admin/v1/tokens", headers, [b'{"client_id": '], stall=True)
    assert done.status == 408
    assert done.headers["connection"] == "close"
    assert done.body["error"] == "invalid_request"


def test_the_openapi_document_needs_no_token(server: Harness) -> None:
    r = server.http.get("/admin/v1/openapi.json")
    assert r.status_code == 200
    assert r.json()["info"]["title"] == "Keyturn admin API"


# -- field and list bounds ----------------------------------------------------------------
@pytest.fixture
def admin(server: Harness) -> dict[str, str]:
    return admin_header(server)


def assert_400(r: Any) -> None:
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"


def test_a_scope_over_the_body_limit_is_413(server: Harness, admin: dict[str, str]) -> None:
    r = server.http.post("/admin/v1/clients", json={"scopes": ["a" * (2 * MIB)]}, headers=admin)
    assert r.status_code == 413
    assert r.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/admin/v1/clients", {"scopes": ["a" * 129]}),
        ("/admin/v1/clients", {"scopes": ["has space"]}),
        ("/admin/v1/clients", {"scopes": [f"s{i}" for i in range(101)]}),
        ("/admin/v1/clients", {"audiences": ["https://a.example/" + "x" * 600]}),
        ("/admin/v1/clients", {"redirect_uris": ["https://a.example/" + "x" * 3000]}),
        ("/admin/v1/clients", {"redirect_uris": [f"https://a.example/{i}" for i in range(21)]}),
        ("/admin/v1/clients", {"name": "n" * 201}),
        ("/admin/v1/clients", {"grant_types": ["g" * 65]}),
        ("/admin/v1/clients", {"token_endpoint_auth_methods": ["m" * 65]}),
        ("/admin/v1/tokens", {"client_id": "c", "scopes": ["a" * 129]}),
        ("/admin/v1/tokens", {"client_id": "c", "audience": ["a" * 513]}),
        ("/admin/v1/tokens", {"client_id": "c", "subject": "s" * 256}),
        ("/admin/v1/tokens/revoke", {"token_id": "t" * 129}),
        (
            "/admin/v1/tokens/import",
            {
                "tokens": [
                    {"client_id": "c", "token": f"t{i}", "expires_at": 2} for i in range(1001)
                ]
            },
        ),
    ],
)
def test_fields_and_lists_are_bounded(
    server: Harness, admin: dict[str, str], path: str, body: dict[str, Any]
) -> None:
    assert_400(server.http.post(path, json=body, headers=admin))


def test_token_update_scopes_are_bounded(server: Harness, admin: dict[str, str]) -> None:
    assert_400(server.http.patch("/admin/v1/tokens/x", json={"scopes": ["a" * 200]}, headers=admin))


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "\\ud800"}',
        '{"name": "ok", "\\udfff": 1}',
        '{"scopes": ["read", "\\ud800x"]}',
        '{"name": "a\\u0000b"}',
        "[" * 5000 + "]" * 5000,
    ],
)
def test_unstorable_json_is_400(server: Harness, admin: dict[str, str], text: str) -> None:
    r = server.http.post(
        "/admin/v1/clients", content=text.encode(), headers={**admin, **JSON_HEADERS}
    )
    assert_400(r)


@pytest.mark.parametrize("name", ["cursor", "client_id", "subject"])
def test_empty_query_strings_are_400(server: Harness, admin: dict[str, str], name: str) -> None:
    assert_400(server.http.get(f"/admin/v1/tokens?{name}=", headers=admin))


def test_bounded_requests_still_work(server: Harness, admin: dict[str, str]) -> None:
    r = server.http.post(
        "/admin/v1/clients",
        json={"scopes": ["read", "a" * 128], "redirect_uris": ["https://a.example/cb"]},
        headers=admin,
    )
    assert r.status_code == 201, r.text
