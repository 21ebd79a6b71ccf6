"""Fixtures for the guard tests: keys are generated once per session (RSA is slow)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from joserfc.jwk import Key

from keyturn.guard import TokenVerifier
from keyturn.testing import FakeClock
from tests.guard.guard_support import AUDIENCE, ISSUER, NOW, FakeIssuer, new_key


@pytest.fixture(scope="session")
def rsa_key() -> Key:
    return new_key("RSA", kid="rsa-1")


@pytest.fixture(scope="session")
def other_rsa_key() -> Key:
    return new_key("RSA", kid="rsa-2")


@pytest.fixture(scope="session")
def ec_key() -> Key:
    return new_key("EC", kid="ec-1")


@pytest.fixture(scope="session")
def ed_key() -> Key:
    return new_key("OKP", kid="ed-1")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def issuer(rsa_key: Key) -> FakeIssuer:
    return FakeIssuer(rsa_key)


@pytest.fixture
def make_verifier(issuer: FakeIssuer, clock: FakeClock) -> Iterator[Callable[..., TokenVerifier]]:
    """Build verifiers wired to the fake issuer; their clients are closed afterwards."""
    made: list[TokenVerifier] = []

    def make(**options: Any) -> TokenVerifier:
        options.setdefault("http_client", issuer.client())
        options.setdefault("async_http_client", issuer.async_client())
        options.setdefault("clock", clock)
        verifier = TokenVerifier(ISSUER, AUDIENCE, **options)
        made.append(verifier)
        return verifier

    yield make
    for verifier in made:
        if verifier._client is not None:
            verifier._client.close()


@pytest.fixture
def verifier(make_verifier: Callable[..., TokenVerifier]) -> TokenVerifier:
    return make_verifier()
