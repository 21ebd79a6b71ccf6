"""The effects the token-manager core asks its shell to perform (websockets style).

Core operations are generators that yield these and receive the outcome; a sync
or async shell carries them out with a real client, store, hook or clock. The
core itself never blocks, sleeps or touches the network, which is what lets one
implementation serve threads, asyncio tasks and every HTTP library.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from keyturn.core.flight import Flight
from keyturn.core.http import HttpRequest
from keyturn.core.token import OAuthToken

__all__ = [
    "CallProvider",
    "CallUpdate",
    "Command",
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


@dataclass(frozen=True, slots=True)
class Send:
    """Send a request to the authorization server -> `HttpResponse`.

    A network failure is thrown back in as `keyturn.core.errors.TransportError`.
    """

    request: HttpRequest


@dataclass(frozen=True, slots=True)
class SendApi:
    """Send the user's own (already authorized) request -> its HTTP status code."""

    request: Any


@dataclass(frozen=True, slots=True)
class WaitFlight:
    """Block until another caller's token exchange finishes -> ``None``."""

    flight: Flight


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait out a back-off on the injected clock -> ``None``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class CallProvider:
    """Call ``token_provider(last_token, manager)`` -> a token (or mapping, or ``None``)."""

    last_token: OAuthToken | None


@dataclass(frozen=True, slots=True)
class CallUpdate:
    """Call ``on_token_update(token)``; a failing hook is logged, not raised -> ``None``."""

    token: OAuthToken


@dataclass(frozen=True, slots=True)
class StoreLoad:
    key: str


@dataclass(frozen=True, slots=True)
class StoreSave:
    key: str
    token: OAuthToken


@dataclass(frozen=True, slots=True)
class StoreClear:
    """Compare-and-clear: remove the stored token only if it is still ``expected``."""

    key: str
    expected: OAuthToken | None


@dataclass(frozen=True, slots=True)
class StoreLock:
    """Take the store's (possibly cross-process) lock for ``key``; shells release it at the end."""

    key: str


@dataclass(frozen=True, slots=True)
class StoreUnlock:
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

Op = Generator[Command, Any, T]
