"""BearerAuthMiddleware and per-route scopes on a real Starlette app (in-process)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from joserfc.jwk import Key

from tests.guard.guard_support import FakeIssuer, claims_for, sign

pytest.importorskip("starlette", reason="the server extra (Starlette) is not installed")

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from keyturn.guard import TokenVerifier
from keyturn.guard.starlette import (
    BearerAuthMiddleware,
    access_token,
    exception_handlers,
    require_scopes,
)

MakeVerifier = Callable[..., TokenVerifier]


async def whoami(request: Request) -> JSONResponse:
    claims = access_token(request)
    return JSONResponse({"sub": claims.subject, "client_id": claims.client_id})


async def write_order(request: Request) -> JSONResponse:
    claims = require_scopes(request, "orders:write")
    return JSONResponse({"by": claims.subject}, status_code=201)


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"sub": access_token(websocket).subject})
    await websocket.close()


def build(verifier: TokenVerifier, **options: Any) -> Starlette:
    return Starlette(
        routes=[
            Route("/me", whoami),
            Route("/orders", write_order, methods=["POST"]),
            Route("/health", health),
            WebSocketRoute("/ws", ws),
        ],
        middleware=[
            Middleware(
                BearerAuthMiddleware,
                verifier=verifier,
                realm="orders",
                exempt_paths=["/health"],
                **options,
            )
        ],
        exception_handlers=exception_handlers(realm="orders"),
    )


@pytest.fixture
def client(verifier: TokenVerifier) -> TestClient:
    return TestClient(build(verifier))


def test_valid_token_reaches_the_endpoint_with_its_claims(client: TestClient, rsa_key: Key) -> None:
    response = client.get("/me", headers={"Authorization": f"Bearer {sign(rsa_key)}"})
    assert response.status_code == 200
    assert response.json() == {"sub": "user-42", "client_id": "shop-frontend"}


def test_missing_token_is_401_without_error(client: TestClient) -> None:
    response = client.get("/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="orders"'


def test_other_scheme_counts_as_missing(client: TestClient) -> None:
    response = client.get("/me", auth=("user", "pass"))
    assert response.status_code == 401
    assert "error=" not in response.headers["www-authenticate"]


def test_expired_token_is_401_invalid_token(client: TestClient, rsa_key: Key) -> None:
    token = sign(rsa_key, claims_for(exp=int(claims_for()["iat"]) - 60))
    response = client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer realm="orders", error="invalid_token", error_description="The access token expired"'
    )
    assert response.json()["error"] == "invalid_token"


def test_malformed_header_is_400(client: TestClient) -> None:
    response = client.get("/me", headers={"Authorization": "Bearer a b"})
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


def test_repeated_header_is_400(client: TestClient, rsa_key: Key) -> None:
    token = sign(rsa_key)
    response = client.get(
        "/me", headers=[("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    )
    assert response.status_code == 400


def test_route_scope_missing_is_403(client: TestClient, rsa_key: Key) -> None:
    response = client.post("/orders", headers={"Authorization": f"Bearer {sign(rsa_key)}"})
    assert response.status_code == 403
    header = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in header
    assert 'scope="orders:write"' in header


def test_route_scope_present(client: TestClient, rsa_key: Key) -> None:
    token = sign(rsa_key, claims_for(scope="orders:write"))
    response = client.post("/orders", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201


def test_middleware_wide_scopes(verifier: TokenVerifier, rsa_key: Key) -> None:
    client = TestClient(build(verifier, scopes=["admin"]))
    response = client.get("/me", headers={"Authorization": f"Bearer {sign(rsa_key)}"})
    assert response.status_code == 403
    assert 'scope="admin"' in response.headers["www-authenticate"]


def test_exempt_path_needs_no_token(client: TestClient) -> None:
    assert client.get("/health").json() == {"ok": True}


def test_issuer_down_is_503(client: TestClient, rsa_key: Key, issuer: FakeIssuer) -> None:
    issuer.down = True
    response = client.get("/me", headers={"Authorization": f"Bearer {sign(rsa_key)}"})
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert "retry-after" in response.headers


def test_websocket_with_token(client: TestClient, rsa_key: Key) -> None:
    with client.websocket_connect(
        "/ws", headers={"Authorization": f"Bearer {sign(rsa_key)}"}
    ) as ws:
        assert ws.receive_json() == {"sub": "user-42"}


def test_websocket_without_token_is_closed(client: TestClient) -> None:
    with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/ws"):
        pass
    assert info.value.code == 1008


def test_access_token_without_middleware_fails_closed(verifier: TokenVerifier) -> None:
    app = Starlette(routes=[Route("/me", whoami)], exception_handlers=exception_handlers())
    response = TestClient(app).get("/me")
    assert response.status_code == 401
