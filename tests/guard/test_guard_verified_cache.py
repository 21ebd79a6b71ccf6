"""The verifier's memory of verified tokens: a reused token skips parsing and the
signature check, and nothing else (key, time claims and revocation every call)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from joserfc.jwk import Key

from keyturn.core.errors import InvalidTokenError
from keyturn.guard import TokenVerifier
from keyturn.guard import verifier as verifier_module
from keyturn.guard.verified import VerifiedTokens
from keyturn.testing import FakeClock
from tests.guard.guard_support import JWKS_PATH, FakeIssuer, claims_for, new_key, sign
from tests.guard.test_guard_revocation import MemoryDenyList

MakeVerifier = Callable[..., TokenVerifier]

pytestmark = pytest.mark.anyio


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The kid of every signature the verifier checks."""
    checked: list[str] = []
    real = verifier_module.verify_signature

    def spy(parsed: Any, key: Any, registry: Any) -> None:
        checked.append(parsed.header["kid"])
        real(parsed, key, registry)

    monkeypatch.setattr(verifier_module, "verify_signature", spy)
    return checked


def test_a_reused_token_is_checked_once(
    verifier: TokenVerifier, rsa_key: Key, signature_checks: list[str]
) -> None:
    token = sign(rsa_key)
    first = verifier.verify(token)
    for _ in range(5):
        assert verifier.verify(token) == first
    assert signature_checks == ["rsa-1"]


async def test_async_and_sync_share_the_memory(
    verifier: TokenVerifier, rsa_key: Key, signature_checks: list[str]
) -> None:
    token = sign(rsa_key)
    verifier.verify(token)
    assert (await verifier.averify(token)).subject == "user-42"
    assert signature_checks == ["rsa-1"]


def test_a_remembered_token_still_expires(
    verifier: TokenVerifier, rsa_key: Key, clock: FakeClock, signature_checks: list[str]
) -> None:
    token = sign(rsa_key, claims_for(clock.now, exp=int(clock.now) + 60))
    verifier.verify(token)
    clock.advance(60 + verifier.leeway)
    with pytest.raises(InvalidTokenError, match="expired"):
        verifier.verify(token)
    assert len(verifier._verified) == 0  # an expired token is forgotten
    with pytest.raises(InvalidTokenError, match="expired"):
        verifier.verify(token)  # and the full check says the same
    assert signature_checks == ["rsa-1", "rsa-1"]


def test_not_before_is_checked_on_every_use(
    verifier: TokenVerifier, rsa_key: Key, clock: FakeClock
) -> None:
    token = sign(rsa_key, claims_for(clock.now, nbf=int(clock.now)))
    verifier.verify(token)
    clock.now = clock.now - 3600  # the wall clock stepped back an hour (NTP, VM resume)
    with pytest.raises(InvalidTokenError, match=r"not valid yet|issued in the future"):
        verifier.verify(token)


def test_a_withdrawn_key_ends_a_remembered_token(
    make_verifier: MakeVerifier,
    issuer: FakeIssuer,
    other_rsa_key: Key,
    clock: FakeClock,
    signature_checks: list[str],
) -> None:
    verifier = make_verifier(jwks_max_age=60)
    issuer.keys.append(other_rsa_key)
    token = sign(other_rsa_key, claims_for(clock.now, exp=int(clock.now) + 3600))
    verifier.verify(token)
    issuer.keys.remove(other_rsa_key)
    clock.advance(61)  # the JWKS is due a refetch, which no longer has the key
    with pytest.raises(InvalidTokenError, match="unknown key"):
        verifier.verify(token)
    assert issuer.hits[JWKS_PATH] == 2
    assert signature_checks == ["rsa-2"]


def test_a_refetched_jwks_means_one_more_check_then_hits_again(
    make_verifier: MakeVerifier,
    issuer: FakeIssuer,
    rsa_key: Key,
    clock: FakeClock,
    signature_checks: list[str],
) -> None:
    verifier = make_verifier(jwks_max_age=60)
    token = sign(rsa_key, claims_for(clock.now, exp=int(clock.now) + 3600))
    verifier.verify(token)
    clock.advance(61)
    verifier.verify(token)  # new key objects: verified against the refetched key
    verifier.verify(token)
    assert issuer.hits[JWKS_PATH] == 2
    assert signature_checks == ["rsa-1", "rsa-1"]


def test_a_replaced_key_under_the_same_kid_is_not_trusted(
    make_verifier: MakeVerifier, issuer: FakeIssuer, rsa_key: Key, clock: FakeClock
) -> None:
    verifier = make_verifier(jwks_max_age=60)
    token = sign(rsa_key, claims_for(clock.now, exp=int(clock.now) + 3600))
    verifier.verify(token)
    issuer.keys[:] = [new_key("RSA", kid="rsa-1")]  # same kid, another key
    clock.advance(61)
    with pytest.raises(InvalidTokenError, match="signature is invalid"):
        verifier.verify(token)


def test_revocation_is_asked_on_every_use(make_verifier: MakeVerifier, rsa_key: Key) -> None:
    deny = MemoryDenyList()
    verifier = make_verifier(revocation=deny)
    token = sign(rsa_key)
    jti = verifier.verify(token).jwt_id
    verifier.verify(token)
    deny.revoked.add(jti)
    with pytest.raises(InvalidTokenError, match="revoked"):
        verifier.verify(token)
    assert deny.calls == 3


def test_a_tampered_copy_of_a_remembered_token_is_not_a_hit(
    verifier: TokenVerifier, rsa_key: Key
) -> None:
    token = sign(rsa_key)
    verifier.verify(token)
    head, _payload, signature = token.split(".")
    forged = sign(new_key("RSA", kid="rsa-1"))  # same kid, attacker's key
    for bad in (f"{head}.{forged.split('.')[1]}.{signature}", forged):
        with pytest.raises(InvalidTokenError):
            verifier.verify(bad)


def test_only_tokens_that_pass_are_remembered(
    verifier: TokenVerifier, rsa_key: Key, clock: FakeClock
) -> None:
    wrong_audience = sign(rsa_key, claims_for(clock.now, aud="https://other.example"))
    for _ in range(2):
        with pytest.raises(InvalidTokenError, match="not meant for this API"):
            verifier.verify(wrong_audience)
    assert len(verifier._verified) == 0


def test_the_memory_is_bounded_least_recently_used_first(
    make_verifier: MakeVerifier, rsa_key: Key, clock: FakeClock, signature_checks: list[str]
) -> None:
    verifier = make_verifier(verified_cache_size=2)
    a, b, c = (sign(rsa_key, claims_for(clock.now, sub=s)) for s in "abc")
    verifier.verify(a)
    verifier.verify(b)
    verifier.verify(a)  # a is now the most recently used
    verifier.verify(c)  # b goes
    assert len(verifier._verified) == 2
    del signature_checks[:]
    verifier.verify(a)
    verifier.verify(c)
    assert signature_checks == []
    verifier.verify(b)
    assert signature_checks == ["rsa-1"]


def test_size_zero_turns_the_memory_off(
    make_verifier: MakeVerifier, rsa_key: Key, signature_checks: list[str]
) -> None:
    verifier = make_verifier(verified_cache_size=0)
    token = sign(rsa_key)
    verifier.verify(token)
    verifier.verify(token)
    assert signature_checks == ["rsa-1", "rsa-1"]
    assert len(verifier._verified) == 0


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="cache size"):
        VerifiedTokens(-1)
