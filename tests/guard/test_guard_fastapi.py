"""The FastAPI dependency require_scopes(...), on a real FastAPI app (in-process)."""

# No "from __future__ import annotations": FastAPI must resolve the route signatures,
# which name a local (verifier) inside Depends(...).

from typing import Annotated

import pytest
from joserfc.jwk import Key

from tests.guard.guard_support import claims_for, sign

pytest.importorskip("fastapi", reason="FastAPI is not installed")

from fastapi import Depends, FastAPI
from starlette.testclient import TestClient

from keyturn.guard import AccessTokenClaims, TokenVerifier
from keyturn.guard.fastapi import require_scopes


def build(verifier: TokenVerifier, *, on_state: bool = True) -> FastAPI:
    app = FastAPI()
    if on_state:
        app.state.token_verifier = verifier

    @app.get("/orders")
    async def list_orders(
        claims: Annotated[AccessTokenClaims, Depends(require_scopes("orders:read"))],
    ) -> dict[str, str]:
        return {"sub": claims.subject}

    @app.post("/orders")
    async def create_order(
        claims: Annotated[
            AccessTokenClaims, Depends(require_scopes("orders:write", realm="orders"))
        ],
    ) -> dict[str, str]:
        return {"by": claims.subject}

    @app.get("/explicit")
    def explicit(
        claims: Annotated[AccessTokenClaims, Depends(require_scopes(verifier=verifier))],
    ) -> dict[str, str]:
        return {"client_id": claims.client_id}

    return app


@pytest.fixture
def client(verifier: TokenVerifier) -> TestClient:
    return TestClient(build(verifier))


def test_granted_scope(client: TestClient, rsa_key: Key) -> None:
    response = client.get("/orders", headers={"Authorization": f"Bearer {sign(rsa_key)}"})
    assert response.status_code == 200
    assert response.json() == {"sub": "user-42"}


def test_missing_scope_is_403_naming_it(client: TestClient, rsa_key: Key) -> None:
    response = client.post("/orders", headers={"Authorization": f"Bearer {sign(rsa_key)}"})
    assert response.status_code == 403
    header = response.headers["www-authenticate"]
    assert header.startswith('Bearer realm="orders", error="insufficient_scope"')
    assert 'scope="orders:write"' in header
    assert response.json()["error"] == "insufficient_scope"  # no {"detail": ...} wrapper


def test_missing_token_is_401_without_error(client: TestClient) -> None:
    response = client.get("/orders")
    assert response.status_code == 401
    # The realm defaults to the API's audience, as in the Starlette middleware.
    assert response.headers["www-authenticate"] == 'Bearer realm="https://orders.example.test"'
    assert response.json() == {"error_description": "An access token is required"}


def test_wrong_audience_is_401(client: TestClient, rsa_key: Key) -> None:
    token = sign(rsa_key, claims_for(aud="https://billing.example.test"))
    response = client.get("/orders", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_malformed_header_is_400(client: TestClient) -> None:
    response = client.get("/orders", headers={"Authorization": "Bearer"})
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


def test_explicit_verifier_in_a_sync_route(verifier: TokenVerifier, rsa_key: Key) -> None:
    client = TestClient(build(verifier, on_state=False))
    response = client.get("/explicit", headers={"Authorization": f"Bearer {sign(rsa_key)}"})
    assert response.json() == {"client_id": "shop-frontend"}


def test_no_verifier_configured_is_a_loud_error(verifier: TokenVerifier, rsa_key: Key) -> None:
    client = TestClient(build(verifier, on_state=False))
    with pytest.raises(RuntimeError, match="token_verifier"):
        client.get("/orders", headers={"Authorization": f"Bearer {sign(rsa_key)}"})


def test_openapi_declares_the_bearer_scheme(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert schema["paths"]["/orders"]["get"]["security"] == [{"HTTPBearer": []}]
