"""`ClientCache`: lookups that find an entry expired share one database read.

On real storage (SQLite and PostgreSQL); a gate holds the read on its way so
the test can ask while it is out. No timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from keyturn.server.clients import ClientCache
from keyturn.storage import database
from keyturn.storage.records import Client
from keyturn.storage.repository import SqlStorage
from keyturn.testing import FakeClock

pytestmark = pytest.mark.anyio


class GatedStorage:
    """The real storage, counting client reads; each waits for ``gate`` first."""

    def __init__(self, inner: SqlStorage) -> None:
        self.inner = inner
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None
        # Answers by read number (1 = the first asked); other reads get the database's.
        # Chosen when the read is asked, not when the database answers: two reads
        # out at once may come back in either order.
        self.found: dict[int, Client | None] = {}
        self.held: int | None = None  # only the first ``held`` reads wait (None: all)

    async def get_client(self, client_id: str) -> Client | None:
        self.reads += 1
        number = self.reads
        found = await self.inner.get_client(client_id)
        if number in self.found:
            found = self.found[number]
        if self.held is None or number <= self.held:
            await self.gate.wait()
        if self.fail is not None:
            failure, self.fail = self.fail, None
            raise failure
        return found


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[tuple[GatedStorage, str]]:
    engine = database.create_engine(database_url)
    await database.upgrade(engine)
    inner = SqlStorage(engine)
    client = Client(client_id="cache-" + str(id(engine)), name="c")
    await inner.create_client(client)
    try:
        yield GatedStorage(inner), client.client_id
    finally:
        await inner.delete_client(client.client_id)
        await inner.close()


def cache_of(storage: GatedStorage, clock: FakeClock) -> ClientCache:
    return ClientCache(storage, ttl=5, clock=clock.monotonic)  # type: ignore[arg-type]


async def asked(*tasks: asyncio.Task[Any]) -> None:
    """Let ``tasks`` run up to their first wait."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_lookups_of_an_expired_entry_share_one_read(
    storage: tuple[GatedStorage, str],
) -> None:
    gated, client_id = storage
    clock = FakeClock()
    cache = cache_of(gated, clock)
    client, fresh = await cache.lookup(client_id)
    assert client is not None
    assert fresh
    assert gated.reads == 1
    assert await cache.lookup(client_id) == (client, False)  # cached
    clock.advance(6)  # expired
    gated.gate.clear()
    lookups = [asyncio.create_task(cache.lookup(client_id)) for _ in range(10)]
    await asked(*lookups)
    assert gated.reads == 2  # one read for the ten
    gated.gate.set()
    assert await asyncio.gather(*lookups) == [(client, True)] * 10
    assert await cache.lookup(client_id) == (client, False)  # remembered again
    assert gated.reads == 2


async def test_a_caller_that_goes_away_leaves_the_read_to_the_others(
    storage: tuple[GatedStorage, str],
) -> None:
    gated, client_id = storage
    cache = cache_of(gated, FakeClock())
    gated.gate.clear()
    first = asyncio.create_task(cache.lookup(client_id))
    second = asyncio.create_task(cache.lookup(client_id))
    await asked(first, second)
    first.cancel()
    gated.gate.set()
    client, fresh = await second
    assert client is not None
    assert fresh
    assert first.cancelled()
    assert gated.reads == 1


async def test_a_failed_read_reaches_every_caller_and_the_next_lookup_reads_again(
    storage: tuple[GatedStorage, str],
) -> None:
    gated, client_id = storage
    cache = cache_of(gated, FakeClock())
    gated.gate.clear()
    gated.fail = ConnectionError("the database went away")
    lookups = [asyncio.create_task(cache.lookup(client_id)) for _ in range(3)]
    await asked(*lookups)
    gated.gate.set()
    results = await asyncio.gather(*lookups, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert gated.reads == 1
    client, fresh = await cache.lookup(client_id)  # nothing remembered from the failure
    assert client is not None
    assert fresh
    assert gated.reads == 2


async def test_reload_reads_for_each_caller(storage: tuple[GatedStorage, str]) -> None:
    """A failed authentication reloads: each failure costs its own read
    (`keyturn.server.client_auth`), so a reload is never shared."""
    gated, client_id = storage
    cache = cache_of(gated, FakeClock())
    gated.gate.clear()
    reloads = [asyncio.create_task(cache.reload(client_id)) for _ in range(3)]
    await asked(*reloads)
    assert gated.reads == 3
    gated.gate.set()
    assert len(await asyncio.gather(*reloads)) == 3


async def test_a_client_forgotten_during_a_read_is_read_again_and_the_old_read_not_kept(
    storage: tuple[GatedStorage, str],
) -> None:
    """This process changes a client (forget()) while a read begun before is out:
    later lookups must not get that read's answer, and it must not be cached."""
    gated, client_id = storage
    cache = cache_of(gated, FakeClock())
    stale = Client(client_id=client_id, name="as read before the change")
    gated.found = {1: stale}
    gated.held = 1  # the read before the change ends last
    gated.gate.clear()
    before = asyncio.create_task(cache.lookup(client_id))
    await asked(before)
    cache.forget(client_id)  # e.g. its secret was rotated through the admin API
    # A read of its own, begun after the change (not the held one: that would hang).
    fresh, _ = await asyncio.wait_for(cache.lookup(client_id), 10)
    assert fresh is not None
    assert fresh.name == "c"
    assert gated.reads == 2
    gated.gate.set()
    assert (await before)[0] == stale  # asked before the change: answered as read
    assert await cache.lookup(client_id) == (fresh, False)  # the stale read was not kept
    assert gated.reads == 2
