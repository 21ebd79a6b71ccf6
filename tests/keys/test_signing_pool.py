"""SigningPool: every waiter gets its own token or its own error, from the pool's threads."""

from __future__ import annotations

import asyncio
import base64
import json
import threading

import jwt as pyjwt
import pytest

from keyturn.keys.jwt import Signer, generate_private_key, public_jwk
from keyturn.keys.signing_pool import SigningPool

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the pool delivers through the asyncio loop


class RecordingSigner(Signer):
    """A real signer that notes which thread signed and can be told to fail."""

    __slots__ = ("jwk", "threads")

    def __init__(self, alg: str) -> None:
        key = generate_private_key(alg)
        self.jwk = public_jwk(key, alg)
        super().__init__(key, alg, self.jwk["kid"])
        self.threads: list[str] = []

    def signature(self, signing_input: bytes) -> bytes:
        self.threads.append(threading.current_thread().name)
        payload = signing_input.split(b".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        if claims.get("fail"):
            raise ValueError(f"cannot sign {claims['sub']}")
        return super().signature(signing_input)


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_many_concurrent_signatures_each_get_their_own_token(alg: str) -> None:
    signer = RecordingSigner(alg)
    pool = SigningPool(threads=2)
    try:
        tokens = await asyncio.gather(
            *(pool.sign(signer, signer.signing_input({"sub": f"user-{i}"})) for i in range(200))
        )
    finally:
        pool.close()
    public = pyjwt.PyJWK(signer.jwk).key
    subjects = [pyjwt.decode(t, public, algorithms=[alg])["sub"] for t in tokens]
    assert subjects == [f"user-{i}" for i in range(200)]
    assert len(signer.threads) == 200
    assert all(name.startswith("keyturn-sign") for name in signer.threads)
    assert len(set(signer.threads)) <= 2


async def test_a_failure_reaches_its_own_caller_only() -> None:
    signer = RecordingSigner("ES256")
    pool = SigningPool(threads=2)
    try:
        results = await asyncio.gather(
            *(
                pool.sign(signer, signer.signing_input({"sub": f"u{i}", "fail": i == 3}))
                for i in range(10)
            ),
            return_exceptions=True,
        )
    finally:
        pool.close()
    errors = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert errors == [3]
    assert "cannot sign u3" in str(results[3])


async def test_a_cancelled_waiter_does_not_disturb_the_others() -> None:
    signer = RecordingSigner("RS256")
    pool = SigningPool(threads=1)
    try:
        first = asyncio.ensure_future(pool.sign(signer, signer.signing_input({"sub": "a"})))
        second = asyncio.ensure_future(pool.sign(signer, signer.signing_input({"sub": "b"})))
        third = asyncio.ensure_future(pool.sign(signer, signer.signing_input({"sub": "c"})))
        await asyncio.sleep(0)
        second.cancel()
        done = await asyncio.gather(first, third)
    finally:
        pool.close()
    assert second.cancelled()
    public = pyjwt.PyJWK(signer.jwk).key
    assert [pyjwt.decode(t, public, algorithms=["RS256"])["sub"] for t in done] == ["a", "c"]


async def test_close_stops_the_threads() -> None:
    signer = RecordingSigner("ES256")
    pool = SigningPool(threads=2)
    await pool.sign(signer, signer.signing_input({"sub": "x"}))
    executor = pool._executor
    assert executor is not None
    pool.close()
    with pytest.raises(RuntimeError):
        executor.submit(print)
