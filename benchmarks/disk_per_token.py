"""Disk per token: what one token row and its index entries take, on SQLite and
PostgreSQL, in the row format this tree writes against the format before it.

    python benchmarks/disk_per_token.py                 # 200,000 rows a table, about 1 minute
    python benchmarks/disk_per_token.py --rows 1000000  # closer to a real table's page fill
    python benchmarks/disk_per_token.py --no-postgres

Each table is made by this tree's migrations (so both formats share the schema
and its indexes) and loaded with the same synthetic tokens of
`table_growth.synthetic_rows`: a week of client-credentials and user-grant
access tokens, refresh-token families, revocations, in issuance order, through
the driver. Only the row format differs:

* **before**: the whole 43-character RFC 7638 thumbprint as the ``kid`` of
  every access token, and a 64-hex-digit keyed hash of its signing input;
* **this tree**: the ``kid`` cut to `keyturn.core.jose.KID_CHARS` characters
  and the 22-character `Hasher.short_hash`.

Bytes per token are SQLite's pages per B-tree (``dbstat``) and PostgreSQL's
``pg_table_size`` and ``pg_relation_size`` per index, divided by the rows.
The ratio is this tree's over the baseline's, same run, same rows. The SQLite
files live in a temporary directory; the PostgreSQL databases
(``keyturn_disk_<pid>_<format>``) are dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
from run import PG_DEFAULT, drop_postgres_databases, log, reset_postgres  # noqa: E402
from table_growth import (  # noqa: E402
    BEFORE_SHORT_ROWS,
    THIS_TREE,
    Population,
    RowFormat,
    client_rows,
    load_postgres,
    load_sqlite,
    postgres_disk,
    sqlite_disk,
    synthetic_rows,
)

from keyturn.storage import database  # noqa: E402

FORMATS: dict[str, RowFormat] = {"before": BEFORE_SHORT_ROWS, "this tree": THIS_TREE}
WEEK = 7 * 86400


def migrate(url: str) -> None:
    async def work() -> None:
        engine = database.create_engine(url)
        try:
            await database.upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(work())


def rows_of(fmt: RowFormat, count: int, seed: int, now: int) -> tuple[Any, Any]:
    """The same tokens in ``fmt``: one seed, so only the format differs."""
    rng = random.Random(seed)
    pop = Population.make(rng, fmt)
    return synthetic_rows(count, now - WEEK, now, pop, rng, fmt), client_rows(pop, now)


def measure(backend: str, fmt_name: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    fmt, now = FORMATS[fmt_name], int(time.time())
    rows, clients = rows_of(fmt, args.rows, args.seed, now)
    key = fmt_name.replace(" ", "")
    if backend == "SQLite":
        path = tmp / f"{key}.db"
        migrate(f"sqlite+aiosqlite:///{path}")
        load_sqlite(path, rows, clients)
        return sqlite_disk(path)
    base = args.postgres_url.rsplit("/", 1)[0]
    url = f"{base}/keyturn_disk_{os.getpid()}_{key}"
    why = reset_postgres(url)
    if why is not None:
        raise RuntimeError(why)
    migrate(url.replace("postgresql://", "postgresql+asyncpg://", 1))
    load_postgres(url, rows, clients)
    return postgres_disk(url)


def _share(disk: dict[str, Any], name: str) -> int:
    parts: dict[str, int] = disk["parts"]
    return sum(parts.values()) if name == "all" else parts.get(name, 0)


def table(results: dict[str, dict[str, dict[str, Any]]], rows: int) -> str:
    out = [
        "## Disk per token: row formats",
        "",
        f"{rows:,} synthetic tokens a table, loaded through the driver into this tree's schema;"
        " bytes per token. Ratio: this tree / before (< 1 is smaller).",
        "",
        "| backend | part | before | this tree | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for backend, by_fmt in results.items():
        before, after = by_fmt["before"], by_fmt["this tree"]
        parts = sorted(before["parts"], key=lambda name: -before["parts"][name])
        per = {f: max(1, d["rows"]) for f, d in by_fmt.items()}
        for name in [*parts, "all"]:
            b = _share(before, name) / per["before"]
            a = _share(after, name) / per["this tree"]
            label = f"**{name}**" if name == "all" else name
            out.append(f"| {backend} | {label} | {b:.0f} | {a:.0f} | {a / b if b else 0:.2f}x |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres-url", default=PG_DEFAULT)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not re.fullmatch(r"postgresql://[^/]+(/[a-z_][a-z0-9_]*)?", args.postgres_url):
        parser.error("--postgres-url must be postgresql://HOST:PORT/DATABASE")
    choices = (("SQLite", args.no_sqlite), ("PostgreSQL", args.no_postgres))
    backends = [backend for backend, off in choices if not off]
    results: dict[str, dict[str, dict[str, Any]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="keyturn-disk-") as tmp:
            for backend in backends:
                for fmt_name in FORMATS:
                    log(f"{backend}: {args.rows:,} rows, {fmt_name}")
                    try:
                        results.setdefault(backend, {})[fmt_name] = measure(
                            backend, fmt_name, args, Path(tmp)
                        )
                    except (OSError, RuntimeError) as exc:
                        log(f"{backend} skipped: {exc}")
                        results.pop(backend, None)
                        break
    finally:
        drop_postgres_databases()  # also at exit; here, so none outlives the run
    text = table(results, args.rows)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "disk_per_token.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
