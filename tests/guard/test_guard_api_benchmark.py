"""benchmarks/guard.py still runs, and its "fresh tokens" really are never remembered.

Small and bounded; no timing is asserted. Skipped where wrk is not installed.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from keyturn.guard.verified import Verified, VerifiedTokens
from tests.conftest import load_script

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "guard.py"

pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script(BENCHMARK, "keyturn_guard_benchmark")


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP/1.1 server on one event loop, as uvicorn is: it answers 200 and
    records each request's token in the order it handles them."""
    seen: list[str] = []
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"authorization":
                        seen.append(value.decode().strip().removeprefix("Bearer "))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # wrk closed the connection
        finally:
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        state["port"] = server.sockets[0].getsockname()[1]
        state["loop"], state["stop"] = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        async with server:
            await state["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(timeout=10)
    yield f"http://127.0.0.1:{state['port']}/data", seen
    state["loop"].call_soon_threadsafe(state["stop"].set)
    thread.join(timeout=10)


def hits(tokens: list[str], size: int) -> int:
    """How many of ``tokens``, in this order, a verifier's memory of ``size`` would recall."""
    memory = VerifiedTokens(size)
    found = 0
    for token in tokens:
        if memory.get(token) is not None:
            found += 1
        else:
            memory.put(token, Verified("kid", object(), object(), 0, 0.0, 0.0))  # type: ignore[arg-type]
    return found


def test_the_fresh_pool_outruns_the_verifier_memory(
    bench: ModuleType, recorder: tuple[str, list[str]], tmp_path: Path
) -> None:
    """Real wrk with guard.lua, two runs, the second resuming where the first stopped:
    a token comes back only after nearly the whole pool, so a memory of half the pool
    never recalls one, while it recalls every reuse of a small pool."""
    url, seen = recorder
    pool = 40
    tokens = tmp_path / "pool.tokens"
    tokens.write_text("".join(f"token-{i:02d}\n" for i in range(pool)))
    server = bench.Server("fresh", "ES256", tokens, pool, url=url)
    for _ in range(2):
        assert bench.wrk(server, 4, 1)["requests"] > pool
    assert len(seen) > 2 * pool
    assert set(seen) == {f"token-{i:02d}" for i in range(pool)}
    assert hits(seen, pool // 2) == 0
    assert hits(seen, 4 * pool) == len(seen) - pool  # the reused pool: only first uses miss
    # The benchmark's own pool follows the same rule against the verifier's real default.
    assert 2 * bench.verified_cache_size() < bench.FRESH_POOL


def test_the_benchmark_runs(bench: ModuleType, tmp_path: Path) -> None:
    pool = 2 * bench.verified_cache_size() + 1  # the smallest pool it accepts: fast to sign
    code = bench.main(
        ["--algs", "ES256", "--concurrency", "16", "--rounds", "1", "--duration", "1",
         "--inprocess-rounds", "1", "--fresh-pool", str(pool), "--out", str(tmp_path)]
    )  # fmt: skip
    assert code == 0
    report = (tmp_path / "guard.md").read_text()
    for label in bench.VARIANTS.values():
        assert f"| ES256 | {label} | 16 |" in report
    assert "ES256, c=16: reused / no auth" in report
    data = json.loads((tmp_path / "guard.json").read_text())
    ratios = data["ratios"]["ES256/c16"]
    assert all(math.isfinite(ratios[k]) for k in ("reused_vs_noauth", "fresh_vs_pyjwt", "ceiling"))
    costs = data["inprocess_us"]["ES256"]
    assert set(costs) == {"bare", "hit", "miss", "pyjwt"}
    assert all(math.isfinite(v) and v >= 0 for v in costs.values())
    assert "| ES256 | " in report.split("The middleware alone, in-process")[1]
