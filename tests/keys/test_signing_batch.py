"""SigningBatch: a loop turn's signatures are made together once the turn's other
work is done, and each caller gets its own token, its own error or nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import threading

import jwt as pyjwt
import pytest

from keyturn.keys.jwt import Signer, generate_private_key, public_jwk
from keyturn.keys.signing_batch import SigningBatch


class LoggingSigner(Signer):
    """A real ES256 signer that logs each signature into a shared list; a subject
    starting with "fail" makes its signature fail."""

    __slots__ = ("jwk", "log")

    def __init__(self, log: list[str]) -> None:
        key = generate_private_key("ES256")
        self.jwk = public_jwk(key, "ES256")
        super().__init__(key, "ES256", self.jwk["kid"])
        self.log = log

    def subject(self, signing_input: bytes) -> str:
        payload = signing_input.split(b".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        return str(claims["sub"])

    def complete(self, signing_input: bytes) -> str:
        subject = self.subject(signing_input)
        self.log.append(f"sign {subject}")
        if subject.startswith("fail"):
            raise ValueError(f"cannot sign {subject}")
        return super().complete(signing_input)


def subjects(signer: LoggingSigner, tokens: list[str]) -> list[str]:
    public = pyjwt.PyJWK(signer.jwk).key
    return [pyjwt.decode(t, public, algorithms=["ES256"])["sub"] for t in tokens]


async def request(batch: SigningBatch, signer: LoggingSigner, subject: str) -> str:
    """A token request's part: its own work, then the signature it waits for."""
    signer.log.append(f"work {subject}")
    token = batch.sign(signer, signer.signing_input({"sub": subject}))
    assert not isinstance(token, str)  # on asyncio, always the turn's future
    return await token


def test_one_turns_signatures_are_made_after_its_work_back_to_back() -> None:
    log: list[str] = []
    signer, batch = LoggingSigner(log), SigningBatch()

    async def main() -> list[str]:
        return await asyncio.gather(*(request(batch, signer, f"u{i}") for i in range(3)))

    tokens = asyncio.run(main())
    assert subjects(signer, tokens) == ["u0", "u1", "u2"]
    assert log == ["work u0", "work u1", "work u2", "sign u0", "sign u1", "sign u2"]
    assert batch._queued == {}  # nothing is kept for a loop once its turn is signed


def test_a_later_turn_makes_a_batch_of_its_own() -> None:
    log: list[str] = []
    signer, batch = LoggingSigner(log), SigningBatch()

    async def main() -> list[str]:
        first = await request(batch, signer, "a")
        second = await asyncio.gather(request(batch, signer, "b"), request(batch, signer, "c"))
        return [first, *second]

    tokens = asyncio.run(main())
    assert subjects(signer, tokens) == ["a", "b", "c"]
    assert log == ["work a", "sign a", "work b", "work c", "sign b", "sign c"]


def test_a_failed_signature_fails_its_caller_alone() -> None:
    log: list[str] = []
    signer, batch = LoggingSigner(log), SigningBatch()

    async def main() -> list[str | BaseException]:
        names = ["u0", "fail-u1", "u2"]
        return await asyncio.gather(
            *(request(batch, signer, n) for n in names), return_exceptions=True
        )

    first, failed, third = asyncio.run(main())
    assert isinstance(failed, ValueError)
    assert "fail-u1" in str(failed)
    assert isinstance(first, str)
    assert isinstance(third, str)
    assert subjects(signer, [first, third]) == ["u0", "u2"]


def test_a_cancelled_caller_is_not_signed_and_the_others_are() -> None:
    log: list[str] = []
    signer, batch = LoggingSigner(log), SigningBatch()

    async def main() -> list[str]:
        gone = asyncio.ensure_future(request(batch, signer, "gone"))
        kept = [asyncio.ensure_future(request(batch, signer, n)) for n in ("k1", "k2")]
        await asyncio.sleep(0)  # all three have queued their signature
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return [await k for k in kept]

    tokens = asyncio.run(main())
    assert subjects(signer, tokens) == ["k1", "k2"]
    assert "sign gone" not in log


def test_an_interrupted_batch_fails_the_callers_it_did_not_sign() -> None:
    log: list[str] = []
    signer, batch = LoggingSigner(log), SigningBatch()

    class Interrupting(LoggingSigner):
        __slots__ = ()

        def complete(self, signing_input: bytes) -> str:
            if self.subject(signing_input) == "stop":
                raise KeyboardInterrupt
            return super().complete(signing_input)

    stopper = Interrupting(log)
    outcomes: list[asyncio.Future[str] | str] = []

    async def main() -> None:
        outcomes.append(batch.sign(signer, signer.signing_input({"sub": "before"})))
        outcomes.append(batch.sign(stopper, stopper.signing_input({"sub": "stop"})))
        outcomes.append(batch.sign(signer, signer.signing_input({"sub": "after"})))
        await asyncio.sleep(0.1)

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())
    before, stopped, after = outcomes
    assert isinstance(before, asyncio.Future)
    assert isinstance(before.result(), str)
    for future in (stopped, after):
        assert isinstance(future, asyncio.Future)
        with pytest.raises(RuntimeError, match="interrupted"):
            future.result()


def test_each_loop_gathers_its_own_turn() -> None:
    """A key ring shared by two loops in two threads: neither loop's requests wait
    on the other's turn or are resolved from the other's thread."""
    log: list[str] = []
    signer, batch = LoggingSigner(log), SigningBatch()
    inside = threading.Event()
    resume = threading.Event()
    other: list[str] = []

    def other_loop() -> None:
        async def main() -> None:
            inside.wait(5)  # the main loop has queued its signature, not signed it
            other.append(await request(batch, signer, "other"))

        asyncio.run(main())
        resume.set()

    async def main() -> str:
        pending = asyncio.ensure_future(request(batch, signer, "main"))
        await asyncio.sleep(0)  # "main" is queued; its turn's batch is not yet run
        thread = threading.Thread(target=other_loop)
        thread.start()
        inside.set()
        resume.wait(5)  # the other loop signs its own while this one is held
        thread.join(5)
        return await pending

    token = asyncio.run(main())
    assert subjects(signer, [token, *other]) == ["main", "other"]
    assert log.index("sign other") < log.index("sign main")
    assert batch._queued == {}


def test_with_no_asyncio_loop_the_token_is_signed_at_once() -> None:
    """As on trio: no asyncio loop runs, so there is no turn to gather."""
    log: list[str] = []
    signer, batch = LoggingSigner(log), SigningBatch()
    token = batch.sign(signer, signer.signing_input({"sub": "now"}))
    assert isinstance(token, str)
    assert subjects(signer, [token]) == ["now"]
    assert batch._queued == {}
