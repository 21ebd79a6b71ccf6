"""What the shells hold of their client: the one function that sends a `Call`."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol, TypeVar

from keyturn.client.api._wire import Call

T = TypeVar("T")


class AsyncRun(Protocol):
    def __call__(self, call: Call[T], /) -> Awaitable[T]: ...
