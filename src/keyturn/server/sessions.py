"""Login sessions and CSRF protection for the server-rendered pages.

The session cookie holds 256 random bits; the database holds only their
keyed hash. Cookies are ``HttpOnly``, ``SameSite=Lax`` and ``Secure`` unless
the issuer is plain-HTTP localhost. CSRF uses a double-submit token: a random
``kt_csrf`` cookie and, in every form, an HMAC of it under the pepper, which a
cross-site page can neither read nor forge.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from keyturn.server.context import ServerContext
from keyturn.storage.records import Session

SESSION_COOKIE = "kt_session"
CSRF_COOKIE = "kt_csrf"


def cookie_is_secure(issuer: str) -> bool:
    parts = urlsplit(issuer)
    local = parts.hostname in ("localhost", "127.0.0.1", "::1")
    return not (parts.scheme == "http" and local)


async def current_session(ctx: ServerContext, request: Request) -> Session | None:
    value = request.cookies.get(SESSION_COOKIE)
    if not value:
        return None
    return await ctx.storage.get_session(ctx.hasher.hash(value), int(ctx.clock()))


async def start_session(ctx: ServerContext, response: Response, user_id: str) -> Session:
    value = secrets.token_urlsafe(32)
    now = int(ctx.clock())
    session = Session(
        session_hash=ctx.hasher.hash(value),
        user_id=user_id,
        auth_time=now,
        expires_at=now + ctx.settings.session_lifetime,
    )
    await ctx.storage.create_session(session)
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=ctx.settings.session_lifetime,
        httponly=True,
        secure=cookie_is_secure(ctx.settings.issuer_url),
        samesite="lax",
        path="/",
    )
    return session


def csrf_cookie(request: Request) -> str:
    """The browser's CSRF secret, or a new one (set it with `set_csrf_cookie`)."""
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


def set_csrf_cookie(ctx: ServerContext, response: Response, value: str) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        value,
        httponly=True,
        secure=cookie_is_secure(ctx.settings.issuer_url),
        samesite="lax",
        path="/",
    )


def csrf_token(ctx: ServerContext, cookie_value: str) -> str:
    return ctx.hasher.hash("csrf:" + cookie_value)


def csrf_ok(ctx: ServerContext, request: Request, submitted: str | None) -> bool:
    cookie_value = request.cookies.get(CSRF_COOKIE)
    if not cookie_value or not submitted:
        return False
    return hmac.compare_digest(csrf_token(ctx, cookie_value), submitted)
