"""``/oauth/authorize``: the authorization endpoint (RFC 6749 §4.1), with its pages.

GET validates the request, then: no session, ``prompt=login``, or a login older
than ``max_age`` (OIDC Core §3.1.2.1) → the login page (or ``login_required``
for ``prompt=none``); consent needed → the consent page (or
``consent_required``); otherwise a code goes straight back. POST is the
consent form: CSRF-checked, re-validated, then a code or ``access_denied``.
Codes are single-use, live 60 s and are bound to the client, the redirect URI,
the PKCE challenge and the nonce.
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from keyturn.core.errors import AccessDeniedError, LoginRequiredError, OAuthError
from keyturn.core.paths import AUTHORIZE_PATH
from keyturn.server.authorization_request import (
    AuthorizationRequest,
    PageError,
    RedirectError,
    parse_authorization_request,
    redirect_with,
)
from keyturn.server.context import ServerContext, get_context
from keyturn.server.pages import PAGE_HEADERS, describe_scopes, error_page, page_form, render
from keyturn.server.secrets import generate_token_id
from keyturn.server.sessions import (
    csrf_cookie,
    csrf_token,
    current_session,
    set_csrf_cookie,
)
from keyturn.storage.records import AuthorizationCode, Session, User

CODE_PREFIX = "ktc_"


class ConsentRequiredError(OAuthError):
    error = "consent_required"


def _redirect(url: str, status_code: int) -> Response:
    return RedirectResponse(url, status_code=status_code, headers=PAGE_HEADERS)


def error_redirect(ctx: ServerContext, exc: RedirectError, status_code: int = 302) -> Response:
    params = {**exc.error.to_dict(), "state": exc.state, "iss": ctx.settings.issuer_url}
    return _redirect(redirect_with(exc.redirect_uri, params), status_code)


async def _parse(ctx: ServerContext, pairs: list[tuple[str, str]]) -> AuthorizationRequest:
    client_id = next((v for k, v in pairs if k == "client_id"), None)
    client = await ctx.clients.get(client_id) if client_id else None
    return parse_authorization_request(pairs, client)


async def _session_user(ctx: ServerContext, request: Request) -> tuple[Session, User] | None:
    session = await current_session(ctx, request)
    if session is None:
        return None
    user = await ctx.storage.get_user(session.user_id)
    return (session, user) if user is not None else None


def _login_page(ctx: ServerContext, request: Request, auth: AuthorizationRequest) -> Response:
    cookie = csrf_cookie(request)
    # Return here after login, without prompt=login or max_age (or the login page
    # would loop): the fresh login satisfies both, and its time goes into the code,
    # so the ID token's auth_time says when it was.
    pairs = [(k, v) for k, v in auth.raw if k not in ("prompt", "max_age")]
    prompt = " ".join(sorted(auth.prompt - {"login"}))
    if prompt:
        pairs.append(("prompt", prompt))
    response = render(
        "login.html",
        client_name=auth.client.name or auth.client.client_id,
        csrf=csrf_token(ctx, cookie),
        next=AUTHORIZE_PATH + "?" + urlencode(pairs),
        username="",
        error=None,
    )
    set_csrf_cookie(ctx, response, cookie)
    return response


def _consent_page(
    ctx: ServerContext, request: Request, auth: AuthorizationRequest, user: User
) -> Response:
    cookie = csrf_cookie(request)
    response = render(
        "consent.html",
        client_name=auth.client.name or auth.client.client_id,
        username=user.username,
        scopes=describe_scopes(auth.scopes),
        params=auth.form_fields(),
        csrf=csrf_token(ctx, cookie),
        redirect_host=urlsplit(auth.redirect_uri).netloc or auth.redirect_uri,
    )
    set_csrf_cookie(ctx, response, cookie)
    return response


async def _issue_code(
    ctx: ServerContext, auth: AuthorizationRequest, session: Session, status_code: int
) -> Response:
    now = int(ctx.clock())
    value = CODE_PREFIX + secrets.token_urlsafe(32)
    await ctx.storage.create_code(
        AuthorizationCode(
            code_id=generate_token_id(),
            code_hash=ctx.hasher.hash(value),
            client_id=auth.client.client_id,
            user_id=session.user_id,
            # What the request carried ("" if it relied on the client's only URI):
            # the token request must repeat a redirect_uri it was given.
            redirect_uri=auth.redirect_uri if auth.redirect_uri_given else "",
            scope=" ".join(auth.scopes),
            code_challenge=auth.code_challenge,
            code_challenge_method=auth.code_challenge_method,
            nonce=auth.nonce,
            auth_time=session.auth_time,
            issued_at=now,
            expires_at=now + ctx.settings.code_lifetime,
            family_id=generate_token_id(),
        )
    )
    params = {"code": value, "state": auth.state, "iss": ctx.settings.issuer_url}
    return _redirect(redirect_with(auth.redirect_uri, params), status_code)


async def _consented(ctx: ServerContext, auth: AuthorizationRequest, user: User) -> bool:
    granted = await ctx.storage.get_consent(user.user_id, auth.client.client_id)
    return granted is not None and set(auth.scopes) <= set(granted.split())


async def authorize_get(request: Request) -> Response:
    ctx = get_context(request)
    try:
        auth = await _parse(ctx, list(parse_qsl(request.url.query, keep_blank_values=True)))
    except PageError as exc:
        return error_page(exc.title, exc.message)
    except RedirectError as exc:
        return error_redirect(ctx, exc)
    found = await _session_user(ctx, request)
    stale = found is not None and auth.too_old(found[0].auth_time, ctx.clock())
    if found is None or "login" in auth.prompt or stale:
        if "none" in auth.prompt:
            why = "the user signed in longer ago than max_age allows"
            login = LoginRequiredError(why if stale else "the user is not signed in")
            return error_redirect(ctx, RedirectError(login, auth.redirect_uri, auth.state))
        return _login_page(ctx, request, auth)
    session, user = found
    if "consent" in auth.prompt or not await _consented(ctx, auth, user):
        if "none" in auth.prompt:
            needed = ConsentRequiredError("the user has not consented to these scopes")
            return error_redirect(ctx, RedirectError(needed, auth.redirect_uri, auth.state))
        return _consent_page(ctx, request, auth, user)
    return await _issue_code(ctx, auth, session, 302)


async def authorize_post(request: Request) -> Response:
    """The consent form's answer."""
    ctx = get_context(request)
    pairs = await page_form(request, ctx, "consent")
    if isinstance(pairs, Response):
        return pairs
    fields = dict(pairs)
    auth_pairs = [(k, v) for k, v in pairs if k not in ("csrf_token", "decision")]
    try:
        auth = await _parse(ctx, auth_pairs)
    except PageError as exc:
        return error_page(exc.title, exc.message)
    except RedirectError as exc:
        return error_redirect(ctx, exc, 303)
    found = await _session_user(ctx, request)
    if found is None or auth.too_old(found[0].auth_time, ctx.clock()):
        return _login_page(ctx, request, auth)
    session, user = found
    if fields.get("decision") != "allow":
        denied = AccessDeniedError("the user denied the request")
        return error_redirect(ctx, RedirectError(denied, auth.redirect_uri, auth.state), 303)
    await ctx.storage.save_consent(
        user.user_id, auth.client.client_id, " ".join(auth.scopes), int(ctx.clock())
    )
    return await _issue_code(ctx, auth, session, 303)
