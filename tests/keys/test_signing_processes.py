"""Signing in helper processes: same tokens as inline, nothing lost when a helper dies."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import AsyncIterator
from typing import Any

import jwt as pyjwt
import pytest

from keyturn.keys import signing_processes
from keyturn.keys.jwt import Signer, generate_private_key, public_jwk
from keyturn.keys.signing_helper import (
    FAILED,
    OK,
    OP_FORGET,
    OP_KEY,
    OP_SIGN,
    _answer,
    frame,
    split_frames,
)
from keyturn.keys.signing_pool import SigningPool
from keyturn.keys.signing_processes import SigningProcesses

pytestmark = pytest.mark.anyio


@pytest.fixture(params=[False, True], ids=["asyncio", "uvloop"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    # Helpers are bound to an asyncio loop; the server runs on uvloop, whose
    # transports and sockets differ from asyncio's.
    return "asyncio", {"use_uvloop": request.param}


class CountingSigner(Signer):
    """A real signer that counts the signatures made in this process (the fallback's)."""

    __slots__ = ("jwk", "local")

    def __init__(self, alg: str = "RS256") -> None:
        key = generate_private_key(alg)
        self.jwk = public_jwk(key, alg)
        super().__init__(key, alg, self.jwk["kid"])
        self.local: list[str] = []

    def signature(self, signing_input: bytes) -> bytes:
        self.local.append(threading.current_thread().name)
        return super().signature(signing_input)


def subjects(signer: CountingSigner, tokens: list[str]) -> list[str]:
    public = pyjwt.PyJWK(signer.jwk).key
    return [pyjwt.decode(t, public, algorithms=[signer.alg])["sub"] for t in tokens]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited all the same.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


@contextlib.asynccontextmanager
async def running(count: int) -> AsyncIterator[SigningProcesses]:
    pool = SigningPool(threads=2)
    helpers = SigningProcesses(count, pool)
    await helpers.start()
    try:
        yield helpers
    finally:
        helpers.close()
        pool.close()


@pytest.fixture
async def processes() -> AsyncIterator[SigningProcesses]:
    async with running(2) as helpers:
        yield helpers


# -- the wire format, in-process ------------------------------------------------
def test_frames_split_only_when_complete() -> None:
    data = frame(OP_SIGN, b"kid\0input") + frame(OP_FORGET, b"kid")
    buffer = bytearray(data[:-2])
    assert split_frames(buffer) == [(OP_SIGN, b"kid\0input")]
    buffer += data[-2:]
    assert split_frames(buffer) == [(OP_FORGET, b"kid")]
    assert buffer == b""


def test_helper_signs_with_a_key_it_was_given_and_refuses_a_forgotten_one() -> None:
    signer = CountingSigner("ES256")
    signers: dict[str, Signer] = {}
    key = f"{signer.kid}\0ES256\0".encode() + signer.private_der()
    assert _answer(signers, OP_KEY, key) is None
    signing_input = signer.signing_input({"sub": "a"})
    answer = _answer(signers, OP_SIGN, signer.kid.encode() + b"\0" + signing_input)
    assert answer is not None
    [(status, signature)] = split_frames(bytearray(answer))
    assert status == OK
    assert subjects(signer, [Signer.compact(signing_input, signature)]) == ["a"]

    assert _answer(signers, OP_FORGET, signer.kid.encode()) is None
    answer = _answer(signers, OP_SIGN, signer.kid.encode() + b"\0" + signing_input)
    assert answer is not None
    [(status, message)] = split_frames(bytearray(answer))
    assert status == FAILED
    assert b"unknown key" in message


def test_a_key_that_does_not_load_is_reported_not_fatal(capsys: Any) -> None:
    signers: dict[str, Signer] = {}
    assert _answer(signers, OP_KEY, b"kid\0RS256\0not a key") is None
    assert signers == {}
    assert "cannot load key" in capsys.readouterr().err


# -- real helper processes --------------------------------------------------------
async def test_helpers_make_the_same_tokens_as_inline_signing(
    processes: SigningProcesses,
) -> None:
    signer = CountingSigner("RS256")  # PKCS#1 v1.5 is deterministic: tokens must match
    claims = [{"sub": f"user-{i}", "n": i} for i in range(100)]
    tokens = await asyncio.gather(
        *(processes.sign(signer, signer.signing_input(c)) for c in claims)
    )
    assert signer.local == []  # none signed in this process
    assert list(tokens) == [Signer.sign(signer, c, "at+jwt") for c in claims]
    assert len(processes.pids) == 2


async def test_each_key_reaches_the_helpers_and_rotation_keeps_working(
    processes: SigningProcesses,
) -> None:
    old, new = CountingSigner("RS256"), CountingSigner("ES256")
    first = await asyncio.gather(
        *(processes.sign(old, old.signing_input({"sub": "o"})) for _ in range(8))
    )
    second = await asyncio.gather(
        *(processes.sign(new, new.signing_input({"sub": "n"})) for _ in range(8))
    )
    assert subjects(old, list(first)) == ["o"] * 8
    assert subjects(new, list(second)) == ["n"] * 8
    processes.retain([new.kid])  # the old key left the ring: helpers forget it
    again = await asyncio.gather(
        *(processes.sign(old, old.signing_input({"sub": "o"})) for _ in range(4))
    )
    assert subjects(old, list(again)) == ["o"] * 4  # re-sent on its next use
    assert old.local == []
    assert new.local == []


async def test_a_helper_that_cannot_sign_sends_the_token_to_the_threads(
    processes: SigningProcesses,
) -> None:
    signer = CountingSigner("RS256")
    for helper in processes._helpers:  # pretend the key was sent; the helper refuses
        helper.kids.add(signer.kid)
    tokens = await asyncio.gather(
        *(processes.sign(signer, signer.signing_input({"sub": "x"})) for _ in range(6))
    )
    assert subjects(signer, list(tokens)) == ["x"] * 6
    assert len(signer.local) == 6
    assert all(name.startswith("keyturn-sign") for name in signer.local)


async def test_cancelled_requests_do_not_shift_the_answers(processes: SigningProcesses) -> None:
    signer = CountingSigner("RS256")
    tasks = [
        asyncio.ensure_future(processes.sign(signer, signer.signing_input({"sub": f"u{i}"})))
        for i in range(60)
    ]
    await asyncio.sleep(0)
    for task in tasks[::3]:
        task.cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    for i, result in enumerate(done):
        if i % 3 == 0:
            assert isinstance(result, asyncio.CancelledError)
        else:
            assert isinstance(result, str)
            assert subjects(signer, [result]) == [f"u{i}"]


async def test_a_killed_helper_loses_no_token_and_is_replaced(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(signing_processes, "RESTART_DELAY", 0.05)
    async with running(1) as helpers:
        signer = CountingSigner("RS256")
        await helpers.sign(
            signer, signer.signing_input({"sub": "warm-up"})
        )  # the helper is running
        [victim] = helpers.pids
        tasks = [
            asyncio.ensure_future(helpers.sign(signer, signer.signing_input({"sub": f"u{i}"})))
            for i in range(200)
        ]
        await asyncio.sleep(0)  # all 200 are sent
        os.kill(victim, signal.SIGKILL)
        tokens = await asyncio.gather(*tasks)
        assert subjects(signer, list(tokens)) == [f"u{i}" for i in range(200)]
        assert signer.local, "the dead helper's tokens were signed on the threads"
        assert "exited" in caplog.text

        for _ in range(200):  # a new helper starts after the back-off
            if helpers.pids:
                break
            await asyncio.sleep(0.05)
        [replacement] = helpers.pids
        assert replacement != victim
        assert not alive(victim)
        before = len(signer.local)
        token = await helpers.sign(signer, signer.signing_input({"sub": "after"}))
        assert subjects(signer, [token]) == ["after"]
        assert len(signer.local) == before


async def test_a_hung_helper_is_ended_and_its_tokens_signed_on_threads(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(signing_processes, "WATCH_INTERVAL", 0.05)
    async with running(1) as helpers:
        signer = CountingSigner("RS256")
        # The warm-up keeps the long deadline: a loaded machine may take more than
        # the short one to answer the first request, which is not a hang.
        await helpers.sign(signer, signer.signing_input({"sub": "warm-up"}))
        monkeypatch.setattr(signing_processes, "SIGN_TIMEOUT", 0.3)
        [hung] = helpers.pids
        os.kill(hung, signal.SIGSTOP)  # alive, but never answers
        tokens = await asyncio.wait_for(
            asyncio.gather(
                *(helpers.sign(signer, signer.signing_input({"sub": f"u{i}"})) for i in range(20))
            ),
            timeout=10,
        )
        assert subjects(signer, list(tokens)) == [f"u{i}" for i in range(20)]
        assert len(signer.local) == 20
        assert "has not answered" in caplog.text
        assert not alive(hung)


async def test_close_ends_every_helper() -> None:
    pool = SigningPool(threads=1)
    helpers = SigningProcesses(2, pool)
    await helpers.start()
    pids = helpers.pids
    assert len(pids) == 2
    assert all(alive(p) for p in pids)
    helpers.close()
    pool.close()
    assert not any(alive(p) for p in pids)
    assert not helpers.serves(asyncio.get_running_loop())


async def test_helpers_serve_only_the_loop_that_started_them(processes: SigningProcesses) -> None:
    assert processes.serves(asyncio.get_running_loop())
    other = asyncio.new_event_loop()
    try:
        assert not processes.serves(other)
    finally:
        other.close()


def test_count_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SigningProcesses(0, SigningPool(threads=1))
