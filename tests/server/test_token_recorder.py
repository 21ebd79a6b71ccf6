"""Group commit of token records: every token recorded before it is answered, in few writes."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from keyturn.server.issuance import TokenRecorder
from keyturn.storage.records import TOKEN_KIND_ACCESS, TokenRecord

pytestmark = pytest.mark.anyio


def record(i: int) -> TokenRecord:
    return TokenRecord(
        token_id=f"t{i}",
        token_hash=f"h{i}",
        kind=TOKEN_KIND_ACCESS,
        client_id="c",
        subject="c",
        scope="",
        audience=("a",),
        grant_type="client_credentials",
        issued_at=1,
        expires_at=2,
    )


class SlowStorage:
    """Writes take a moment, so records pile up behind a write in flight."""

    def __init__(self, bad: set[str] | None = None) -> None:
        self.rows: list[str] = []
        self.writes: list[int] = []
        self.bad = bad or set()

    async def record_token(self, token: TokenRecord) -> None:
        await self.record_tokens([token])

    async def record_tokens(self, tokens: Sequence[TokenRecord]) -> None:
        await anyio.sleep(0.01)
        if any(t.token_id in self.bad for t in tokens):
            raise RuntimeError("constraint violated")
        self.writes.append(len(tokens))
        self.rows.extend(t.token_id for t in tokens)


async def test_concurrent_records_share_writes_and_all_land() -> None:
    storage = SlowStorage()
    recorder = TokenRecorder(storage)  # type: ignore[arg-type]
    done: list[str] = []

    async def issue(i: int) -> None:
        await recorder.record(record(i))
        # Answered only once its own record is written.
        assert f"t{i}" in storage.rows
        done.append(f"t{i}")

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(issue, i)
    assert sorted(storage.rows) == sorted(f"t{i}" for i in range(50))
    assert len(done) == 50
    assert len(storage.writes) < 10  # grouped, not one write per token


async def test_a_failed_batch_fails_only_the_bad_record() -> None:
    storage = SlowStorage(bad={"t3"})
    recorder = TokenRecorder(storage)  # type: ignore[arg-type]
    outcomes: dict[int, str] = {}

    async def issue(i: int) -> None:
        try:
            await recorder.record(record(i))
            outcomes[i] = "ok"
        except RuntimeError:
            outcomes[i] = "error"

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(issue, i)
    assert outcomes[3] == "error"
    assert all(v == "ok" for i, v in outcomes.items() if i != 3)
    assert sorted(storage.rows) == sorted(f"t{i}" for i in range(8) if i != 3)


async def test_a_cancelled_request_does_not_strand_the_others() -> None:
    storage = SlowStorage()
    recorder = TokenRecorder(storage)  # type: ignore[arg-type]
    finished: list[int] = []

    async def issue(i: int) -> None:
        await recorder.record(record(i))
        finished.append(i)

    scopes = [anyio.CancelScope() for _ in range(6)]

    async def cancellable(i: int) -> None:
        with scopes[i]:
            await issue(i)

    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(cancellable, i)  # 0 starts the batch; 1-5 join it
        await anyio.sleep(0.001)  # the write is in flight now
        for scope in scopes:
            scope.cancel()
        for i in range(6, 9):
            tg.start_soon(issue, i)
    # The cancelled requests got no answer, but their batch was written all the same,
    # and the requests that came after were written and answered.
    assert sorted(storage.rows) == [f"t{i}" for i in range(9)]
    assert sorted(finished) == [6, 7, 8]
