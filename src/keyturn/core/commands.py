"""The effects the token-manager core asks its shell to perform (websockets style).

Core operations are generators that yield these and receive the outcome; a sync
or async shell carries them out with a real client, store, hook or clock. The
core itself never blocks, sleeps or touches the network, which is what lets one
implementation serve threads, asyncio tasks and every HTTP library.

Each command names the type of its outcome (``Effect[R]``) and is performed with
``outcome = yield from command``: the command yields itself once and returns
what the shell sent back, so every outcome is typed where it is used instead of
being ``Any`` (the pattern of a ``yield from`` future in pre-``await`` asyncio).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from keyturn.core.flight import Flight
from keyturn.core.http import HttpRequest, HttpResponse
from keyturn.core.token import OAuthToken

__all__ = [
    "CallProvider",
    "CallUpdate",
    "Command",
    "Effect",
    "Op",
    "Send",
    "SendApi",
    "Sleep",
    "StoreClear",
    "StoreLoad",
    "StoreLock",
    "StoreSave",
    "StoreUnlock",
    "WaitFlight",
]

T = TypeVar("T")
R = TypeVar("R")


class Effect(Generic[R]):
    """A command whose outcome is an ``R``: ``outcome = yield from command``."""

    __slots__ = ()

    def __iter__(self) -> Generator[Command, object, R]:
        # The shell sends back exactly the outcome the command's type names.
        return cast(R, (yield cast("Command", self)))


@dataclass(frozen=True, slots=True)
class Send(Effect[HttpResponse]):
    """Send a request to the authorization server -> `HttpResponse`.

    A network failure is thrown back in as `keyturn.core.errors.TransportError`.
    """

    request: HttpRequest


@dataclass(frozen=True, slots=True)
class SendApi(Effect[int]):
    """Send the user's own (already authorized) request -> its HTTP status code."""

    request: Any


@dataclass(frozen=True, slots=True)
class WaitFlight(Effect[None]):
    """Block until another caller's token exchange finishes -> ``None``."""

    flight: Flight


@dataclass(frozen=True, slots=True)
class Sleep(Effect[None]):
    """Wait out a back-off on the injected clock -> ``None``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class CallProvider(Effect[object]):
    """Call ``token_provider(last_token, manager)`` -> a token (or mapping, or ``None``)."""

    last_token: OAuthToken | None


@dataclass(frozen=True, slots=True)
class CallUpdate(Effect[None]):
    """Call ``on_token_update(token)``; a failing hook is logged, not raised -> ``None``."""

    token: OAuthToken


@dataclass(frozen=True, slots=True)
class StoreLoad(Effect["OAuthToken | None"]):
    key: str


@dataclass(frozen=True, slots=True)
class StoreSave(Effect[None]):
    key: str
    token: OAuthToken


@dataclass(frozen=True, slots=True)
class StoreClear(Effect[None]):
    """Compare-and-clear: remove the stored token only if it is still ``expected``."""

    key: str
    expected: OAuthToken | None


@dataclass(frozen=True, slots=True)
class StoreLock(Effect[None]):
    """Take the store's (possibly cross-process) lock for ``key``; shells release it at the end."""

    key: str


@dataclass(frozen=True, slots=True)
class StoreUnlock(Effect[None]):
    key: str


Command = (
    Send
    | SendApi
    | WaitFlight
    | Sleep
    | CallProvider
    | CallUpdate
    | StoreLoad
    | StoreSave
    | StoreClear
    | StoreLock
    | StoreUnlock
)

Op = Generator[Command, object, T]
"""A core operation: yields commands, returns a ``T``."""
