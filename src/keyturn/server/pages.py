"""Server-rendered HTML for login, consent and errors (Jinja2, autoescaped).

The pages need no JavaScript, cannot be framed, are never cached and send no
referrer, so neither a code nor a CSRF token leaks through them.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse

from keyturn.server.context import ServerContext
from keyturn.server.request_body import FORM, media_type, read_body
from keyturn.server.sessions import csrf_ok

if TYPE_CHECKING:
    from jinja2 import Environment


@functools.cache
def _environment() -> Environment:
    """Made at the first page: Jinja2 is 15 ms of a cold start that serves no page."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    return Environment(
        loader=PackageLoader("keyturn.server", "templates"),
        autoescape=select_autoescape(["html"]),
        auto_reload=False,
    )


PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

SCOPE_TEXT = {
    "openid": "Confirm who you are",
    "profile": "See your username and name",
    "offline_access": "Keep access when you are not using it",
}


def describe_scopes(scopes: tuple[str, ...]) -> list[dict[str, str]]:
    return [
        {"name": s, "text": SCOPE_TEXT.get(s, f"Use the \u201c{s}\u201d permission")}
        for s in scopes
    ]


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = _environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


def error_page(title: str, message: str, status_code: int = 400) -> HTMLResponse:
    return render("error.html", status_code, title=title, message=message)


async def page_form(
    request: Request, ctx: ServerContext, form: str
) -> list[tuple[str, str]] | HTMLResponse:
    """The fields of a CSRF-checked browser form post (``form`` names it), or the
    error page to answer: the login and consent forms are read only this way."""
    if media_type(request) != FORM:
        return error_page("Invalid request", f"The {form} form was not sent as a form.", 415)
    body = await read_body(request, ctx.settings.max_body_bytes)
    if b"%00" in body or b"\x00" in body:
        return error_page("Invalid request", "The form contains a NUL character.")
    pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    if not csrf_ok(ctx, request, dict(pairs).get("csrf_token")):
        return error_page(
            "Request expired",
            "This form could not be verified (it may be old or come from another site). "
            "Go back to the application and start again.",
            403,
        )
    return pairs
