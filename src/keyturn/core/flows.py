"""The one pair of drivers for sans-IO flows (httpx's ``Auth`` flow pattern).

A flow is a generator that yields what it needs done (an HTTP request, a
command) and receives the outcome. These two loops run one to completion with
the caller's ``send``: its result is sent back in, its failure is thrown back in,
so the flow, not the driver, decides what a failure means. The guard's network
steps and the client SDK's token operations both run on them; only ``send``
touches a socket.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

__all__ = ["drive", "drive_async"]

Y = TypeVar("Y")
S = TypeVar("S")
T = TypeVar("T")


def drive(flow: Generator[Y, S, T], send: Callable[[Y], S]) -> T:
    """Run ``flow`` to completion, carrying out each step with ``send``."""
    reply: Any = None
    error: Exception | None = None
    try:
        while True:
            try:
                step = flow.throw(error) if error is not None else flow.send(reply)
            except StopIteration as stop:
                result: T = stop.value
                return result
            reply, error = None, None
            try:
                reply = send(step)
            except Exception as exc:
                error = exc
    finally:
        flow.close()


async def drive_async(flow: Generator[Y, S, T], send: Callable[[Y], Awaitable[S]]) -> T:
    """`drive` with an awaitable ``send``: the flow itself never awaits."""
    reply: Any = None
    error: Exception | None = None
    try:
        while True:
            try:
                step = flow.throw(error) if error is not None else flow.send(reply)
            except StopIteration as stop:
                result: T = stop.value
                return result
            reply, error = None, None
            try:
                reply = await send(step)
            except Exception as exc:
                error = exc
    finally:
        flow.close()
