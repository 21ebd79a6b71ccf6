"""Sign tokens on worker threads, many tokens per thread wake-up.

pyca/cryptography releases the GIL while it signs, so signing on threads lets
a second core sign while the event loop serves other requests. But handing one
token to a thread and back through ``run_in_executor`` costs a thread wake-up
and a loop wake-up each way, measured here at 70-110 us of CPU per hop -- a
third of an RS256 signature and more than an ES256 one. This pool keeps a
queue: a worker that finds more work queued keeps signing without sleeping,
and results go back through ``call_soon_threadsafe``, whose wake-ups libuv and
asyncio coalesce while the loop is busy. Written here because the standard
executors hand over one callable at a time.

Whether to use it at all is the caller's choice (`KeyRing.sign`): a lone
request gains nothing from a thread and would pay the hop.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from keyturn.keys.jwt import Signer

_Job = tuple[Signer, bytes, "asyncio.Future[str]"]


class SigningPool:
    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._jobs: deque[_Job] = deque()
        self._lock = threading.Lock()
        self._workers = 0  # threads draining the queue now
        self._executor: ThreadPoolExecutor | None = None

    async def sign(self, signer: Signer, signing_input: bytes) -> str:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        with self._lock:
            self._jobs.append((signer, signing_input, future))
            start = self._workers < self._threads
            if start:
                self._workers += 1
        if start:
            self._start_worker(loop)
        return await future

    def _start_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="keyturn-sign")
        self._executor.submit(self._drain, loop)

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    self._workers -= 1
                    return
                signer, signing_input, future = self._jobs.popleft()
            if future.done():  # its request was cancelled
                continue
            try:
                token = signer.complete(signing_input)
            except BaseException as exc:  # delivered to the waiting request
                loop.call_soon_threadsafe(_fail, future, exc)
            else:
                loop.call_soon_threadsafe(_deliver, future, token)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def _deliver(future: asyncio.Future[str], token: str) -> None:
    if not future.done():
        future.set_result(token)


def _fail(future: asyncio.Future[str], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
