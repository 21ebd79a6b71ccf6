"""Client authentication at the token (and later revoke/introspect) endpoints.

RFC 6749 §2.3: HTTP Basic (``client_secret_basic``, id and secret
form-urlencoded before base64) or the body (``client_secret_post``; JSON
bodies too). One method per request; each client's methods are pinned.
Square-style ``Authorization: Client <secret>`` with ``client_id`` in the body
counts as the header method. Failures lock the client id out for the source
address that failed, and throttle that address (server/lockout.py), so a
secret cannot be guessed online and nobody can lock a client out for others.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from urllib.parse import unquote_plus

from starlette.requests import Request

from keyturn.core.errors import InvalidClientError, InvalidRequestError
from keyturn.server.context import ServerContext
from keyturn.server.lockout import Lockout, source_of
from keyturn.server.request_headers import header as request_header
from keyturn.storage.records import AUTH_BASIC, AUTH_NONE, AUTH_POST, Client

BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="keyturn", charset="UTF-8"'}


@dataclass(frozen=True, slots=True)
class Credentials:
    client_id: str
    secret: str | None
    method: str


def extract_credentials(request: Request, params: dict[str, str]) -> Credentials:
    header = request_header(request, b"authorization")
    body_id = params.get("client_id")
    body_secret = params.get("client_secret")
    if header:
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "basic":
            if body_secret is not None:
                raise InvalidRequestError("use one client authentication method, not two")
            client_id, secret = _decode_basic(value)
            if body_id is not None and body_id != client_id:
                raise InvalidRequestError("client_id in the body differs from the Basic one")
            return Credentials(client_id, secret, AUTH_BASIC)
        if scheme == "client":
            if body_secret is not None:
                raise InvalidRequestError("use one client authentication method, not two")
            if not body_id:
                raise InvalidRequestError(
                    "with 'Authorization: Client', send client_id in the body"
                )
            if not value:
                raise _invalid("the Client authorization header has no secret", basic=False)
            return Credentials(body_id, value, AUTH_BASIC)
        raise _invalid(f"unsupported authorization scheme {scheme!r}; use Basic", basic=True)
    if body_id is None:
        raise _invalid("client authentication is required", basic=True)
    if body_secret is None:
        return Credentials(body_id, None, AUTH_NONE)
    return Credentials(body_id, body_secret, AUTH_POST)


def _decode_basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _invalid("the Basic credentials are not valid base64", basic=True) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id:
        raise _invalid("the Basic credentials must be client_id:client_secret", basic=True)
    return unquote_plus(client_id), unquote_plus(secret)


def _invalid(description: str, *, basic: bool, detail: str | None = None) -> InvalidClientError:
    return InvalidClientError(
        description, detail=detail, headers=BASIC_CHALLENGE if basic else None
    )


_NOBODY = Client(client_id="", previous_secret_hash="", previous_secret_expires_at=0)
"""Stands in for an unknown client: no secret, and a previous one whose check runs."""


def _accepts(ctx: ServerContext, client: Client | None, creds: Credentials) -> bool:
    """Whether ``creds`` authenticate ``client``: its current secret, or the previous
    one while its rotation overlap lasts.

    The work is the same for every confidential attempt: one keyed hash and two
    constant-time comparisons, against the current and the previous secret's
    hashes or a stand-in for either that is missing or expired. So an unknown
    client, a client mid-rotation and one with a single secret take one time.
    """
    ok = client is not None and creds.method in client.auth_methods
    if creds.method == AUTH_NONE:
        return ok and client is not None and client.is_public
    held = client or _NOBODY  # the same steps for an unknown id as for a known one
    current = held.secret_hash
    previous = held.previous_secret_hash if held.previous_secret_live(ctx.clock()) else None
    actual = ctx.hasher.hash(creds.secret or "")
    stand_in = "0" * len(actual)  # no HMAC-SHA-256 hex digest is this, in practice
    current_ok = hmac.compare_digest(actual, current or stand_in)
    previous_ok = hmac.compare_digest(actual, previous or stand_in)
    return ok and (current_ok or previous_ok)


async def authenticate_client(
    ctx: ServerContext, request: Request, params: dict[str, str]
) -> Client:
    creds = extract_credentials(request, params)
    basic = creds.method == AUTH_BASIC
    lockout = Lockout.for_clients(ctx)
    source = source_of(request)
    await lockout.check(
        ctx,
        creds.client_id,
        source,
        "too many failed authentication attempts; wait and try again",
    )
    client, fresh = await ctx.clients.lookup(creds.client_id)
    ok = _accepts(ctx, client, creds)
    if not ok and not fresh:
        # A failure always costs exactly one database read, whether the id is
        # unknown or known with a wrong secret, cached or not: the time of a
        # failure says nothing about which ids exist. It also picks up a
        # secret rotated, or a client deleted, by another process.
        client = await ctx.clients.reload(creds.client_id)
        ok = _accepts(ctx, client, creds)
    if not ok or client is None:
        await lockout.failed(ctx, creds.client_id, source)
        if client is not None and creds.method not in client.auth_methods:
            reason = "this client must authenticate with " + " or ".join(client.auth_methods)
            if creds.method == AUTH_NONE and not client.is_public:
                reason = "this client is confidential: send its client_secret"
            raise _invalid(reason, basic=basic, detail=f"client {creds.client_id!r}")
        raise _invalid(
            "client authentication failed: unknown client or wrong secret",
            basic=basic,
            detail=f"client {creds.client_id!r}",
        )
    return client
