"""``POST /oauth/login``: the login form (username, password), CSRF-checked.

Failed logins are counted per username and lock it out for a while; the
answer never says whether the username exists. On success the browser goes
back to the authorization request it came from (only ever that endpoint:
``next`` is not an open redirect).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from keyturn.core.paths import AUTHORIZE_PATH
from keyturn.server.context import get_context
from keyturn.server.lockout import Lockout, source_of
from keyturn.server.pages import PAGE_HEADERS, error_page, page_form, render
from keyturn.server.passwords import verify_password
from keyturn.server.sessions import start_session

AUTHORIZE_PREFIX = AUTHORIZE_PATH + "?"


async def login_post(request: Request) -> Response:
    ctx = get_context(request)
    pairs = await page_form(request, ctx, "login")
    if isinstance(pairs, Response):
        return pairs
    fields = dict(pairs)
    next_url = fields.get("next", "")
    if not next_url.startswith(AUTHORIZE_PREFIX) or "\\" in next_url:
        return error_page("Invalid request", "This login form does not lead anywhere valid.")
    submitted = fields.get("csrf_token")
    username = fields.get("username", "").strip()
    password = fields.get("password", "")

    client_id = dict(parse_qsl(next_url[len(AUTHORIZE_PREFIX) :])).get("client_id", "")
    client = await ctx.clients.get(client_id) if client_id else None
    client_name = (client.name or client.client_id) if client else "the application"

    def again(message: str, status_code: int) -> Response:
        return render(
            "login.html",
            status_code,
            client_name=client_name,
            csrf=submitted,
            next=next_url,
            username=username,
            error=message,
        )

    lockout = Lockout.for_users(ctx)
    source = source_of(request)
    name = username.lower()
    if await lockout.blocked_for(ctx, name, source) is not None:
        return again("Too many failed attempts. Wait a few minutes and try again.", 429)
    user = await ctx.storage.get_user_by_name(username) if username else None
    ok = await verify_password(user.password_hash if user else None, password)
    if not ok or user is None:
        await lockout.failed(ctx, name, source)
        return again("Wrong username or password.", 401)
    response = RedirectResponse(next_url, status_code=303, headers=PAGE_HEADERS)
    await start_session(ctx, response, user.user_id)
    return response
