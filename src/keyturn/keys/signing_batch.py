"""Sign a loop turn's inline tokens back to back, after the turn's other work.

An ES256 signature takes about 30 us when signatures follow each other, but
65-95 us when each follows a token request's own Python work (parsing,
client authentication, claims, the record): that work evicts OpenSSL's
precomputed P-256 tables and its code from the CPU caches, and the signature
reloads them. Measured with the token endpoint driven in-process by 16
callers (taking the signature out saved 96 us a token), and in a loop that
signs between rounds of unrelated work (one signature after each round:
65 us; four in a row: 43 us; sixteen: 32 us); see benchmarks/README.md.

So a token signed on the event loop is not signed where its request asks for
it. The request queues its signing input and waits; once the loop has run
every request that was ready in this turn, one callback signs the queue in a
row and hands each request its token. The request loses no turn of the loop
by it: it would have waited for its record's commit anyway, which is written
in the same turn (`keyturn.server.issuance.TokenRecorder`). A lone request
is signed one turn later than inline, which is when its write has started.

Written here because nothing in asyncio or anyio runs a callable over a
batch of a loop turn's callers; `SigningPool` does the same for threads.
"""

from __future__ import annotations

import asyncio

from keyturn.keys.jwt import Signer

_Job = tuple[Signer, bytes, "asyncio.Future[str]"]


class SigningBatch:
    """Per event loop, the signatures to make at the end of its turn.

    Each loop's queue is touched only by that loop's thread (a key ring may
    serve several loops, as the CLI's and tests' do), and exists only while
    it holds a job, so a loop that is gone leaves nothing behind.
    """

    def __init__(self) -> None:
        self._queued: dict[asyncio.AbstractEventLoop, list[_Job]] = {}

    def sign(self, signer: Signer, signing_input: bytes) -> asyncio.Future[str] | str:
        """The token, as a future that the loop's turn resolves; off asyncio
        (trio), where there is no turn to gather, the token itself, now."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return signer.complete(signing_input)
        future: asyncio.Future[str] = loop.create_future()
        jobs = self._queued.get(loop)
        if jobs is None:
            jobs = self._queued[loop] = []
            loop.call_soon(self._sign_all, loop)
        jobs.append((signer, signing_input, future))
        return future

    def _sign_all(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs = self._queued.pop(loop)
        for at, (signer, signing_input, future) in enumerate(jobs):
            if future.done():  # its request was cancelled
                continue
            try:
                token = signer.complete(signing_input)
            except Exception as exc:  # that request's failure, not the others'
                future.set_exception(exc)
            except BaseException:
                for _, _, waiting in jobs[at:]:
                    if not waiting.done():
                        waiting.set_exception(RuntimeError("signing was interrupted"))
                raise
            else:
                future.set_result(token)
