"""The start-up heap, kept out of the cyclic garbage collector's full collections.

Under load CPython's collector made a full (generation 2) collection every
1-1.5 s in a Keyturn server: enough request objects outlive the young
generations for the old one to grow by a quarter. Each walked every object
the process had made at start-up (modules, SQLAlchemy's metadata, pydantic's
models and the rest) with the event loop stopped: 60-80 ms a collection,
measured on the token endpoint at concurrency 64, where it was the p99 of
issuance (79-87 ms). After `gc.freeze` those objects sit in a permanent
generation that collections skip (reference counting still frees them), and a
full collection took 0.6-1.8 ms.

Freezing is a choice about the whole process's heap, so only a process the
server owns makes it: `keyturn serve` sets ``KEYTURN_GC_FREEZE`` (unless the
operator set it), and an application that embeds the ASGI app keeps its own
collector as it is.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect what is garbage now, then freeze the rest; how many objects are frozen.

    The collection first, so that no start-up garbage in a reference cycle is
    frozen, and so kept, for the life of the process."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
