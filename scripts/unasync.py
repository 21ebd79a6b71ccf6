#!/usr/bin/env python3
"""Write the blocking API shells from the asyncio ones: ``_async/*.py`` -> ``_sync/*.py``.

The shells in src/keyturn/client/api/_async are written by hand; their
blocking twins in ``_sync`` are this script's output, checked in, so the two
cannot drift. ``--check`` writes nothing and exits 1 when a checked-in twin is
not what the script would write (CI and tests/client/api/test_unasync.py run
it). Standard library only, so CI can run it before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ASYNC_DIR = Path(__file__).resolve().parent.parent / "src/keyturn/client/api/_async"
HEADER = "# Generated from ../_async/{name} by scripts/unasync.py: edit that file, not this one.\n"

# Applied in order to the whole text of each file.
SUBS: list[tuple[str, str]] = [
    # An async generator cannot ``yield from``; a generator should.
    (r"^( *)for (\w+) in (.+):\n\1    yield \2\n", r"\1yield from \3\n"),
    (r"\basync (def|for|with)\b", r"\1"),
    (r"\bawait ", ""),
    (r"\bAwaitable\[(\w+)\]", r"\1"),
    (r"\b__a(enter|exit|iter|next)__\b", r"__\1__"),
    (r"\baclose\b", "close"),
    (r"\bsend_async\b", "send_sync"),
    (r"\bapi\._async\b", "api._sync"),
    (r"\bAsync([A-Z]\w*)", r"\1"),
]
_COMPILED = [(re.compile(pattern, re.MULTILINE), repl) for pattern, repl in SUBS]
_ABC_IMPORT = re.compile(r"^from collections\.abc import (.+)$", re.MULTILINE)


def unasync(text: str) -> str:
    """The blocking twin of one async module's source."""
    for pattern, repl in _COMPILED:
        text = pattern.sub(repl, text)
    return _ABC_IMPORT.sub(lambda match: _abc_import(match[1], text), text)


def _abc_import(names: str, text: str) -> str:
    """``collections.abc`` names re-sorted once renamed, ``Awaitable`` dropped if unused."""
    kept = {name.strip() for name in names.split(",")}
    if len(re.findall(r"\bAwaitable\b", text)) == 1:
        kept.discard("Awaitable")
    return f"from collections.abc import {', '.join(sorted(kept))}" if kept else ""


def expected(async_dir: Path) -> dict[str, str]:
    """What the sibling ``_sync`` directory should hold: file name -> text."""
    return {
        src.name: HEADER.format(name=src.name) + unasync(src.read_text())
        for src in sorted(async_dir.glob("*.py"))
    }


def stale(async_dir: Path) -> list[Path]:
    """The ``_sync`` files that differ from what would be written, are missing, or are extra."""
    sync_dir = async_dir.with_name("_sync")
    wanted = expected(async_dir)
    present = {path.name for path in sync_dir.glob("*.py")}
    names = sorted(present | wanted.keys())
    return [
        sync_dir / name
        for name in names
        if name not in present
        or name not in wanted
        or (sync_dir / name).read_text() != wanted[name]
    ]


def write(async_dir: Path) -> list[Path]:
    """Bring ``_sync`` up to date; the files changed (written or removed)."""
    sync_dir = async_dir.with_name("_sync")
    sync_dir.mkdir(exist_ok=True)
    wanted = expected(async_dir)
    changed = stale(async_dir)
    for path in changed:
        if path.name in wanted:
            path.write_text(wanted[path.name])
        else:
            path.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if _sync is stale")
    parser.add_argument("--async-dir", type=Path, default=ASYNC_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale(args.async_dir)
        for path in outdated:
            print(f"stale: {path} (run scripts/unasync.py)", file=sys.stderr)
        return 1 if outdated else 0
    for path in write(args.async_dir):
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
