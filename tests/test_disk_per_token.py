"""benchmarks/disk_per_token.py compares the row formats it says it compares.

Its two formats must differ only in the key id and an access token's keyed
hash, the one it loads as "this tree" must be what the server writes, and its
table must add up. A few thousand rows on SQLite; no timing.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import ModuleType

import pytest

from keyturn.core.jose import KID_CHARS
from keyturn.server.secrets import SHORT_HASH_CHARS
from keyturn.storage.token_writer import COLUMNS
from tests.conftest import load_script

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "disk_per_token.py"


@pytest.fixture(scope="module")
def disk() -> ModuleType:
    return load_script(SCRIPT, "bench_disk_per_token")


def test_the_formats_differ_only_in_kid_and_access_hash(disk: ModuleType) -> None:
    rows = {
        name: list(disk.rows_of(fmt, 2_000, seed=3, now=1_800_000_000)[0])
        for name, fmt in disk.FORMATS.items()
    }
    kid, mac, kind = (COLUMNS.index(c) for c in ("kid", "token_hash", "kind"))
    for before, after in zip(rows["before"], rows["this tree"], strict=True):
        same = [i for i in range(len(COLUMNS)) if i not in (kid, mac)]
        assert [before[i] for i in same] == [after[i] for i in same]
        if after[kind] == "access_token":
            assert len(before[kid]) == 43
            assert after[kid] == before[kid][:KID_CHARS]  # the same key, cut as the ring cuts
            assert (len(before[mac]), len(after[mac])) == (64, SHORT_HASH_CHARS)
        else:
            assert len(after[mac]) == len(before[mac]) == 64


def test_it_measures_sqlite_and_this_tree_is_smaller(
    disk: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(rows=3_000, seed=5, postgres_url=None)
    results = {"SQLite": {n: disk.measure("SQLite", n, args, tmp_path) for n in disk.FORMATS}}
    before, after = results["SQLite"]["before"], results["SQLite"]["this tree"]
    assert before["rows"] == after["rows"] == 3_000
    assert set(before["parts"]) == set(after["parts"])  # the same schema, every B-tree
    assert sum(after["parts"].values()) < sum(before["parts"].values())
    assert after["parts"]["ix_tokens_kid_expires_at"] < before["parts"]["ix_tokens_kid_expires_at"]
    text = disk.table(results, 3_000)
    total = next(line for line in text.splitlines() if "**all**" in line)
    cells = [c.strip() for c in total.strip("|").split("|")]
    b, a = (sum(d["parts"].values()) / 3_000 for d in (before, after))
    assert cells[2:] == [f"{b:.0f}", f"{a:.0f}", f"{a / b:.2f}x"]
