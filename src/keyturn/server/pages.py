"""Server-rendered HTML for login, consent and errors (Jinja2, autoescaped).

The pages need no JavaScript, cannot be framed, are never cached and send no
referrer, so neither a code nor a CSRF token leaks through them.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

_env = Environment(
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
    html = _env.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


def error_page(title: str, message: str, status_code: int = 400) -> HTMLResponse:
    return render("error.html", status_code, title=title, message=message)
