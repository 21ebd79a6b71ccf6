"""Sign RSA tokens in helper processes, so the event loop pays ~15 us, not ~120.

A thread pool (`signing_pool`) lets another core make the signature, but each
hand-over costs the event loop's thread GIL hand-offs and wake-ups: 65-150 us
of its time per token measured under load, where the loop is the bottleneck.
A helper process shares no GIL: the loop writes one small frame to a
socketpair and later reads the signature back through an asyncio protocol
(measured on a synthetic loop: about 15 us of loop time per signature).

Helpers start in the server (never in the CLI) once its key ring holds an
RSA key (`KeyRing.start_sign_processes`), as new interpreters
(``subprocess``, not ``fork``: the server has threads). They learn each key
the first time it signs through them and forget it when it leaves the key
ring. If a helper dies, or hangs (no answer in `SIGN_TIMEOUT`, then it is
ended), the tokens it was signing are signed on the thread pool instead,
nothing is lost, and a new helper is started after a back-off.
Only the signature is made in the helper; the claims, header and the compact
form stay in the server (`Signer`'s three steps).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterable
from typing import cast

from keyturn.keys.jwt import Signer
from keyturn.keys.signing_helper import (
    FAILED,
    OP_FORGET,
    OP_KEY,
    OP_SIGN,
    frame,
    split_frames,
)
from keyturn.keys.signing_pool import SigningPool

log = logging.getLogger("keyturn.keys")

RESTART_DELAY = 1.0
"""Seconds before a dead helper is replaced; doubles per death, up to a minute."""
MAX_RESTART_DELAY = 60.0
STOP_TIMEOUT = 2.0
SIGN_TIMEOUT = 5.0
"""A helper that owes an answer this long is hung (stopped, swapped out): it is
ended and its tokens are signed on the threads. A signature takes under 1 ms."""
WATCH_INTERVAL = 1.0


class HelperFailed(Exception):
    """The helper went away or could not sign; the caller signs elsewhere."""


class _Helper(asyncio.Protocol):
    """One helper process and the server's end of its socketpair."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        started: float,
        on_lost: Callable[[_Helper], None],
    ) -> None:
        self.process = process
        self.started = started
        self.kids: set[str] = set()
        self.waiting: deque[tuple[asyncio.Future[bytes], float]] = deque()  # (future, due)
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._on_lost = on_lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        for status, body in split_frames(self._buffer):
            future, _ = self.waiting.popleft()
            if future.done():  # its request was cancelled
                continue
            if status == FAILED:
                future.set_exception(HelperFailed(body.decode(errors="replace")))
            else:
                future.set_result(body)

    def connection_lost(self, exc: Exception | None) -> None:
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(HelperFailed("the signing helper exited"))
        self._on_lost(self)

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def stop(self) -> None:
        """End the helper now: it reads EOF at once and exits."""
        if self.transport is not None:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                # transport.close() would close the socket only on the loop's
                # next turn; shutting it down ends the helper's read now. On a
                # duplicate: uvloop's transport sockets refuse shutdown().
                with (
                    contextlib.suppress(OSError),
                    socket.fromfd(sock.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as dup,
                ):
                    dup.shutdown(socket.SHUT_RDWR)
            self.transport.abort()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _launch() -> tuple[subprocess.Popen[bytes], socket.socket]:
    """Start one helper; its exit is seen as EOF on the socket, so no child watcher."""
    ours, theirs = socket.socketpair()
    # The server's own import path, so the helper imports the same keyturn.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        process = subprocess.Popen(  # noqa: S603 - our own module, no shell
            [sys.executable, "-m", "keyturn.keys.signing_helper", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            env=env,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return process, ours


class SigningProcesses:
    """Helper processes bound to the event loop that started them."""

    def __init__(self, count: int, fallback: SigningPool) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        self._count = count
        self._fallback = fallback
        self._helpers: list[_Helper] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._restart_delay = RESTART_DELAY
        self._restart: asyncio.TimerHandle | None = None
        self._refill: asyncio.Task[None] | None = None
        self._watch: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for _ in range(self._count):
            await self._spawn()
        self._watch = self._loop.call_later(WATCH_INTERVAL, self._watchdog)

    def _watchdog(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        for helper in list(self._helpers):
            if helper.waiting and helper.waiting[0][1] < now:
                log.error(
                    "signing helper %d has not answered in %.0f s; ending it",
                    helper.process.pid,
                    SIGN_TIMEOUT,
                )
                helper.process.kill()
                if helper.transport is not None:
                    helper.transport.abort()  # its waiting tokens go to the threads
        if not self._closed:
            self._watch = self._loop.call_later(WATCH_INTERVAL, self._watchdog)

    async def _spawn(self) -> None:
        assert self._loop is not None
        process, ours = _launch()
        helper = _Helper(process, self._loop.time(), self._lost)
        try:
            await self._loop.create_unix_connection(lambda: helper, sock=ours)
        except BaseException:
            ours.close()
            process.kill()
            process.wait()
            raise
        if self._closed:  # closed while this one was starting
            helper.stop()
            return
        self._helpers.append(helper)

    def serves(self, loop: asyncio.AbstractEventLoop) -> bool:
        return loop is self._loop and not self._closed

    @property
    def pids(self) -> list[int]:
        return [h.process.pid for h in self._helpers]

    async def sign(self, signer: Signer, signing_input: bytes) -> str:
        helper = self._least_busy()
        if helper is not None:
            assert self._loop is not None
            if signer.kid not in helper.kids:
                helper.kids.add(signer.kid)
                name = f"{signer.kid}\0{signer.alg}\0".encode()
                helper.send(frame(OP_KEY, name + signer.private_der()))
            future: asyncio.Future[bytes] = self._loop.create_future()
            helper.waiting.append((future, self._loop.time() + SIGN_TIMEOUT))
            helper.send(frame(OP_SIGN, signer.kid.encode() + b"\0" + signing_input))
            try:
                return signer.compact(signing_input, await future)
            except HelperFailed as exc:
                log.warning("signing on a thread instead: %s", exc)
        return await self._fallback.sign(signer, signing_input)

    def _least_busy(self) -> _Helper | None:
        best: _Helper | None = None
        for helper in self._helpers:
            if best is None or len(helper.waiting) < len(best.waiting):
                best = helper
        return best

    def retain(self, kids: Iterable[str]) -> None:
        """Helpers forget the keys not in ``kids`` (the key ring dropped them)."""
        keep = set(kids)
        for helper in self._helpers:
            for kid in helper.kids - keep:
                helper.send(frame(OP_FORGET, kid.encode()))
            helper.kids &= keep

    # -- a helper died: sign on threads meanwhile, start a new one later -----
    def _lost(self, helper: _Helper) -> None:
        # A helper leaves `_helpers` only here (or in close()), so every helper
        # in the list has a live connection.
        if helper in self._helpers:
            self._helpers.remove(helper)
        if self._closed or self._loop is None:
            return
        if helper.process.poll() is None:  # the socket broke but the process lives
            helper.process.kill()
            helper.process.wait(timeout=STOP_TIMEOUT)
        if self._loop.time() - helper.started > MAX_RESTART_DELAY:
            self._restart_delay = RESTART_DELAY  # it had been fine; not a crash loop
        log.warning(
            "signing helper %d exited (code %s); a new one starts in %.0f s",
            helper.process.pid,
            helper.process.poll(),
            self._restart_delay,
        )
        self._schedule_refill()

    def _schedule_refill(self) -> None:
        assert self._loop is not None
        if self._restart is None and not self._closed:
            self._restart = self._loop.call_later(self._restart_delay, self._start_refill)
            self._restart_delay = min(self._restart_delay * 2, MAX_RESTART_DELAY)

    def _start_refill(self) -> None:
        assert self._loop is not None
        self._restart = None
        if self._refill is None or self._refill.done():
            self._refill = self._loop.create_task(self._refill_helpers())

    async def _refill_helpers(self) -> None:
        try:
            while not self._closed and len(self._helpers) < self._count:
                await self._spawn()
        except Exception as exc:
            log.error("could not start a signing helper: %r", exc)
            self._schedule_refill()

    def close(self) -> None:
        self._closed = True
        if self._watch is not None:
            self._watch.cancel()
        if self._restart is not None:
            self._restart.cancel()
        if self._refill is not None:
            self._refill.cancel()
        helpers, self._helpers = self._helpers, []
        for helper in helpers:
            helper.stop()
