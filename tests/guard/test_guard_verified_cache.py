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


@pytest.fixture
def full_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every hit that took the full check (key, refetch and time claims) instead of
    the quick one."""
    taken: list[str] = []
    real = verifier_module.check_time_window

    def spy(*args: Any, **kwargs: Any) -> None:
        taken.append("time window")
        real(*args, **kwargs)

    monkeypatch.setattr(verifier_module, "check_time_window", spy)
    return taken


def test_a_hit_inside_its_window_takes_the_quick_check(
    verifier: TokenVerifier, rsa_key: Key, clock: FakeClock, full_checks: list[str]
) -> None:
    token = sign(rsa_key, claims_for(clock.now, exp=int(clock.now) + 60))
    verifier.verify(token)
    clock.advance(60 + verifier.leeway - 0.5)  # the last half second of its life
    verifier.verify(token)
    assert full_checks == []
    clock.advance(0.5)
    with pytest.raises(InvalidTokenError, match="expired"):
        verifier.verify(token)  # out of the window: the full check decides, and says why
    assert full_checks == ["time window"]


def test_a_not_before_in_the_leeway_holds_a_hit_back_to_it(
    verifier: TokenVerifier, rsa_key: Key, clock: FakeClock
) -> None:
    nbf = int(clock.now) + 5  # accepted now, thanks to the 10 s leeway
    token = sign(rsa_key, claims_for(clock.now, nbf=nbf))
    verifier.verify(token)
    clock.now = nbf - verifier.leeway - 1  # the clock stepped back past the leeway
    with pytest.raises(InvalidTokenError, match="not valid yet"):
        verifier.verify(token)


def test_no_quick_hit_once_the_key_set_is_due_a_refetch(
    make_verifier: MakeVerifier,
    issuer: FakeIssuer,
    rsa_key: Key,
    clock: FakeClock,
    full_checks: list[str],
) -> None:
    verifier = make_verifier(jwks_max_age=60)
    token = sign(rsa_key, claims_for(clock.now, exp=int(clock.now) + 3600))
    verifier.verify(token)
    clock.advance(59)
    verifier.verify(token)
    assert full_checks == []  # the quick check, until the key set's last second
    assert issuer.hits[JWKS_PATH] == 1
    clock.advance(1)  # the JWKS is now stale, however long the token lives
    verifier.verify(token)
    assert issuer.hits[JWKS_PATH] == 2


def test_a_refetch_during_a_verification_leaves_no_quick_hit(
    make_verifier: MakeVerifier,
    issuer: FakeIssuer,
    rsa_key: Key,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    signature_checks: list[str],
) -> None:
    """Another thread installs a new key set between the generation read and the key
    read: the entry carries the older generation, so the next use checks the key."""
    verifier = make_verifier(jwks_max_age=60)
    token = sign(rsa_key, claims_for(clock.now, exp=int(clock.now) + 3600))
    real_key = verifier._key

    def key_after_a_refetch(kid: str, now: float) -> Any:
        key = real_key(kid, now)
        verifier._keys.install({kid: key}, now)  # same key object, a new generation
        return key

    monkeypatch.setattr(verifier, "_key", key_after_a_refetch)
    verifier.verify(token)
    monkeypatch.undo()
    entry = verifier._verified.get(token)
    assert entry is not None
    assert entry.generation < verifier._keys.generation
    verifier.verify(token)  # the full check: same key, still fresh, so still a hit
    assert signature_checks == ["rsa-1"]


def test_an_entry_forgotten_while_it_is_read_is_still_returned() -> None:
    """`get` takes no lock: another thread may drop the entry between its two steps."""
    from collections import OrderedDict

    class ForgottenAfterRead(OrderedDict[str, str]):
        def get(self, key: str, default: Any = None) -> Any:
            value = super().get(key, default)
            self.pop(key, None)  # another thread's forget(), right after the read
            return value

    memory: VerifiedTokens[str] = VerifiedTokens(4)
    memory.put("token", "entry")
    memory._entries = ForgottenAfterRead(memory._entries)
    assert memory.get("token") == "entry"
    assert len(memory) == 0


def test_threads_reading_and_writing_at_once_keep_the_bound() -> None:
    import threading

    memory: VerifiedTokens[int] = VerifiedTokens(64)
    failures: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(20_000):
                token = f"token-{(i * 7 + offset) % 200}"
                if memory.get(token) is None:
                    memory.put(token, i)
                if i % 5 == 0:
                    memory.forget(token)
        except BaseException as exc:  # reported below, not lost in the thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(memory) <= 64
