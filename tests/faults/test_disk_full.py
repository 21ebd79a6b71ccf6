"""A full disk under the SQLite database: 503 with Retry-After, then recovery by itself.

The test mounts a 4 MiB tmpfs as the server's data directory (it must run as
root with permission to mount; elsewhere it is skipped, saying so), fills it
with a filler file until ENOSPC, and checks that token requests answer 503 --
never 500 -- and that once the filler is deleted the same server process
answers 200 again within 30 s, and keeps answering 200 for 300 more tokens.
The volume is small on purpose: the WAL alone could fill it again after the
space is freed, which must not leave the server stuck.
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.faults.conftest import CC, CLIENT_TIMEOUT, start_server, stop_server

pytestmark = pytest.mark.faults


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, unmounted at teardown (lazily if something still holds it)."""
    mount = tmp_path / "volume"
    mount.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        pytest.skip("no mount command here: the disk-full test needs to mount a small tmpfs")
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({done.stderr.strip()})")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def fill(path: Path) -> int:
    """Write ``path`` until the volume has no space left; the bytes written."""
    written = 0
    with path.open("wb", buffering=0) as f:
        for size in (64 * 1024, 4096, 512, 1):
            chunk = b"\0" * size
            for _ in range(10_000):
                try:
                    written += f.write(chunk) or 0
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return written


def test_disk_full_answers_503_then_recovers(small_volume: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    server = start_server(
        logs,
        f"sqlite+aiosqlite:///{small_volume / 'keyturn.db'}",
        extra_env={"KEYTURN_DATA_DIR": str(small_volume)},
    )
    statuses: Counter[int] = Counter()
    try:
        client = server.create_client()
        auth = (client["client_id"], client["client_secret"])
        with httpx2.Client(timeout=CLIENT_TIMEOUT) as http:

            def token() -> httpx2.Response:
                r = http.post(server.token_url, data={"grant_type": CC}, auth=auth)
                statuses[r.status_code] += 1
                assert r.status_code in (200, 503), (r.status_code, r.text)
                if r.status_code == 503:
                    assert r.headers.get("retry-after", "").isdigit(), r.headers
                    assert r.json()["error"] == "temporarily_unavailable", r.text
                return r

            for _ in range(20):
                assert token().status_code == 200
            filler = small_volume / "filler"
            filled = fill(filler)

            full: Counter[int] = Counter()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and full[503] < 20:
                full[token().status_code] += 1
            print(f"\ndisk full ({filled} filler bytes): {dict(full)}")
            assert full[503] >= 1, "no 503 while the disk was full"

            filler.unlink()
            freed = time.monotonic()
            recovered: float | None = None
            while time.monotonic() - freed < 30:
                if token().status_code == 200:
                    recovered = time.monotonic() - freed
                    break
                time.sleep(0.2)
            # Not stuck: the volume still holds 300 more tokens (the database stays
            # small; an unchecked WAL would fill 4 MiB again), ending on 20 in a row.
            after: Counter[int] = Counter()
            streak = 0
            while time.monotonic() - freed < 30 and not (after.total() >= 300 and streak >= 20):
                status = token().status_code
                after[status] += 1
                streak = streak + 1 if status == 200 else 0
                if status != 200:
                    time.sleep(0.05)
            print(
                f"space freed: first 200 after "
                f"{'never' if recovered is None else f'{recovered:.2f} s'}; "
                f"then {dict(after)}, ending on {streak} 200s in a row; "
                f"all answers {dict(statuses)}"
            )
            assert recovered is not None, "still failing 30 s after the space was freed"
            assert after.total() >= 300, "not 300 more tokens within 30 s"
            assert streak >= 20, "stuck again: the volume filled up after the space was freed"
    finally:
        stop_server(server)
        with contextlib.suppress(OSError):
            print(f"volume after: { {p.name: p.stat().st_size for p in small_volume.iterdir()} }")
    assert "Traceback" not in server.log(), server.log()[-3000:]
