"""The demo API of the README, in-process against a mocked issuer."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from joserfc.jwk import Key

from keyturn.testing import FakeClock
from tests.guard.guard_support import NOW, claims_for, sign

pytest.importorskip("uvicorn", reason="the server extra is not installed")

from starlette.testclient import TestClient

from keyturn.guard import TokenVerifier
from tests.conftest import load_script

DEMO = Path(__file__).parents[2] / "examples" / "demo_api.py"


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    return load_script(DEMO, "keyturn_demo_api")


def test_demo_loop_in_process(
    demo: ModuleType, verifier: TokenVerifier, rsa_key: Key, clock: FakeClock
) -> None:
    with TestClient(demo.build_app(verifier)) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/orders").status_code == 401

        token = sign(rsa_key, claims_for(exp=int(NOW) + 60))
        ok = client.get("/orders", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        assert ok.json()["for"] == "user-42"

        clock.advance(60 + verifier.leeway)  # the token expires
        expired = client.get("/orders", headers={"Authorization": f"Bearer {token}"})
        assert expired.status_code == 401
        assert 'error="invalid_token"' in expired.headers["www-authenticate"]

        fresh = sign(rsa_key, claims_for(clock.now))
        assert (
            client.get("/orders", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
        )


def test_demo_needs_the_orders_scope(
    demo: ModuleType, verifier: TokenVerifier, rsa_key: Key
) -> None:
    with TestClient(demo.build_app(verifier)) as client:
        token = sign(rsa_key, claims_for(scope="profile"))
        response = client.get("/orders", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 403
        assert 'scope="orders:read"' in response.headers["www-authenticate"]
        me = client.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json() == {"sub": "user-42", "client_id": "shop-frontend", "scopes": ["profile"]}
