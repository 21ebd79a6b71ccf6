"""Scope and audience policy (RFC 6749 §3.3, RFC 8707, RFC 9068 §3)."""

from __future__ import annotations

import re

from keyturn.core.errors import (
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    OAuthError,
)

_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")


def parse_scope(value: str | None) -> tuple[str, ...]:
    """Split a scope parameter; order kept, duplicates dropped."""
    if not value:
        return ()
    items: list[str] = []
    for item in value.split(" "):
        if not item:
            continue
        if not _SCOPE_TOKEN.match(item):
            raise InvalidScopeError(f"the scope {item!r} has characters RFC 6749 §3.3 forbids")
        if item not in items:
            items.append(item)
    return tuple(items)


def grant_scopes(requested: tuple[str, ...], allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The scopes to grant: what was asked if allowed, else every allowed scope."""
    if not requested:
        return allowed
    _refuse_unlisted(requested, allowed, InvalidScopeError, "ask for", none="(no scopes)")
    return requested


def grant_audience(
    requested: str | None, allowed: tuple[str, ...], default: str
) -> tuple[str, ...]:
    """The ``aud`` of the token: one requested audience the client may use."""
    permitted = allowed or (default,)
    if not requested:
        return (permitted[0],)
    wanted = tuple(a for a in requested.split(" ") if a)
    if not wanted:
        raise InvalidRequestError("the audience parameter is empty")
    _refuse_unlisted(wanted, permitted, InvalidTargetError, "get tokens for")
    return wanted


def _refuse_unlisted(
    wanted: tuple[str, ...],
    allowed: tuple[str, ...],
    error: type[OAuthError],
    asking: str,
    *,
    none: str = "",
) -> None:
    """Raise ``error`` naming every wanted item the client is not allowed, and what it is."""
    refused = [item for item in wanted if item not in allowed]
    if refused:
        raise error(
            f"this client may not {asking} {' '.join(refused)}; "
            f"allowed: {' '.join(allowed) or none}"
        )
