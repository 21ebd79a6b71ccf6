# Generated from ../_async/_run.py by scripts/unasync.py: edit that file, not this one.
"""What the shells hold of their client: the one function that sends a `Call`."""

from __future__ import annotations

from typing import Protocol, TypeVar

from keyturn.client.api._wire import Call

T = TypeVar("T")


class Run(Protocol):
    def __call__(self, call: Call[T], /) -> T: ...
