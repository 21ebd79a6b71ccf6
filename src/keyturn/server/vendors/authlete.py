"""Authlete's token management API, for the ``authlete`` SDK (``AuthleteApiImpl``).

Routes under ``/api/{serviceId}/`` (Authlete API v3) and ``/api/`` (v2):
``auth/token/get/list``, ``auth/token/create``, ``auth/token/update``,
``auth/token/delete/{accessTokenIdentifier}``, ``auth/token/revoke`` and
``idtoken/reissue``. Keyturn is single-tenant: any ``serviceId`` names its one
service. Callers authenticate as the admin API's do, with a Bearer access
token carrying ``keyturn:admin`` (v3's service access token), or with HTTP
Basic and the id and secret of a client allowed ``keyturn:admin`` (v2's
service API key and secret).

Bodies are Authlete's: camelCase, every field optional (the SDK sends each
one, ``null``/``0``/``false`` when unset, and those mean "not given"),
timestamps in milliseconds, grant types by enum name. A token is named by its
value or by the identifier Keyturn lists (``accessTokenHash`` in a listing).
Fields Keyturn has no meaning for are refused when set, never silently
dropped. Every answer carries ``resultCode`` and ``resultMessage``; errors add
``action`` (``BAD_REQUEST``, ``FORBIDDEN``, ``NOT_FOUND``, ``CALLER_ERROR``,
``INTERNAL_SERVER_ERROR``) with the HTTP status the admin API would give.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from keyturn.core.errors import InsufficientScopeError, InvalidRequestError, OAuthError
from keyturn.server import token_service
from keyturn.server.admin.auth import ADMIN_SCOPE, REALM
from keyturn.server.bearer import bearer_token_record
from keyturn.server.client_auth import authenticate_client
from keyturn.server.context import ServerContext, get_context
from keyturn.server.grants import refresh_token
from keyturn.server.request_body import is_storable, read_body
from keyturn.server.responses import json_response
from keyturn.server.vendors._common import answer
from keyturn.storage.protocol import TokenFilter
from keyturn.storage.records import TOKEN_KIND_ACCESS, TOKEN_KIND_REFRESH, TokenRecord

GRANT_NAMES = {
    "AUTHORIZATION_CODE": "authorization_code",
    "PASSWORD": "password",
    "CLIENT_CREDENTIALS": "client_credentials",
    "REFRESH_TOKEN": "refresh_token",
}
"""Authlete's grant-type enum names that are also Keyturn grants."""
NAME_OF_GRANT = {v: k for k, v in GRANT_NAMES.items()}
MAX_LISTED = 10_000
"""A listing counts at most this many tokens (``totalCount``)."""


def ok(message: str, **fields: Any) -> Response:
    return json_response(
        {"resultCode": "KT_OK", "resultMessage": f"[KT_OK] {message}", "action": "OK", **fields}
    )


def render_for(caller_error: str | None) -> Callable[[OAuthError], Response]:
    """Errors as Authlete's; ``caller_error`` is the endpoint's name for any 4xx."""

    def render(exc: OAuthError) -> Response:
        if exc.status_code >= 500:
            action = "INTERNAL_SERVER_ERROR"
        elif caller_error is not None:
            action = caller_error
        elif exc.status_code == 404:
            action = "NOT_FOUND"
        elif exc.status_code in (401, 403):
            action = "FORBIDDEN"
        else:
            action = "BAD_REQUEST"
        code = "KT_" + exc.error
        body = {
            "resultCode": code,
            "resultMessage": f"[{code}] {exc.description or exc.error}",
            "action": action,
        }
        return json_response(body, exc.status_code, exc.headers)

    return render


async def authorize(request: Request, ctx: ServerContext) -> None:
    """The admin API's Bearer token, or Basic with an admin client's id and secret."""
    scheme = request.headers.get("authorization", "").split(" ", 1)[0].lower()
    if scheme != "basic":
        await bearer_token_record(ctx, request, realm=REALM, scope=ADMIN_SCOPE)
        return
    client = await authenticate_client(ctx, request, {})
    if ADMIN_SCOPE not in client.scopes:
        raise InsufficientScopeError(f"the client is not allowed the {ADMIN_SCOPE} scope")


# -- request bodies ----------------------------------------------------------------------
async def read_request(request: Request, ctx: ServerContext) -> dict[str, Any]:
    raw = await read_body(request, ctx.settings.max_body_bytes)
    try:
        body = json.loads(raw) if raw else {}
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidRequestError("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("the JSON body must be an object")
    return body


def given(body: dict[str, Any], name: str) -> bool:
    """Authlete's SDK sends unset fields as null, 0, false or []: those are not given."""
    return body.get(name) not in (None, 0, False, [], "")


def text(body: dict[str, Any], name: str) -> str | None:
    if not given(body, name):
        return None
    value = body[name]
    if isinstance(value, int) and not isinstance(value, bool) and name == "clientId":
        value = str(value)
    if not isinstance(value, str) or not is_storable(value):
        raise InvalidRequestError(f"{name} must be a string")
    return value


def number(body: dict[str, Any], name: str) -> int | None:
    if not given(body, name):
        return None
    value = body[name]
    if type(value) is not int or value < 0 or value >= 2**63:
        raise InvalidRequestError(f"{name} must be a non-negative integer")
    return value


def words(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(v, str) and v and " " not in v and is_storable(v) for v in value
    ):
        raise InvalidRequestError(f"{name} must be a list of single words")
    return value


async def authorized(request: Request) -> ServerContext:
    """Every route starts here: the caller is an admin (`authorize`)."""
    ctx = get_context(request)
    await authorize(request, ctx)
    return ctx


async def admitted(
    request: Request, unsupported: tuple[str, ...] = ()
) -> tuple[ServerContext, dict[str, Any]]:
    """An admin's request and its JSON body, with no field Keyturn cannot honour."""
    ctx = await authorized(request)
    body = await read_request(request, ctx)
    refuse(body, unsupported)
    return ctx, body


def refuse(body: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if given(body, name):
            raise InvalidRequestError(f"{name} is not supported by Keyturn")


async def resolve(ctx: ServerContext, identifier: str) -> TokenRecord | None:
    """A token by its value, else by the identifier Keyturn lists."""
    record = await token_service.find_by_value(ctx, identifier)
    if record is None and len(identifier) <= token_service.MAX_TOKEN_ID:
        record = await ctx.storage.get_token(identifier)
    return record


def ms(seconds: int | None) -> int:
    return seconds * 1000 if seconds else 0


# -- the endpoints -----------------------------------------------------------------------
async def token_list(request: Request) -> Response:
    ctx = await authorized(request)
    query = request.query_params
    unknown = set(query) - {"clientIdentifier", "subject", "start", "end"}
    if unknown:
        raise InvalidRequestError(f"unknown query parameter {sorted(unknown)[0]!r}")
    bounds = {}
    for name, default in (("start", 0), ("end", 5)):
        raw = query.get(name, str(default))
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
            raise InvalidRequestError(f"{name} must be a non-negative integer")
        bounds[name] = int(raw)
    if bounds["end"] < bounds["start"]:
        raise InvalidRequestError("end must not be less than start")
    client_id, subject = query.get("clientIdentifier") or None, query.get("subject") or None
    client = await token_service.get_client(ctx, client_id) if client_id else None
    access = await _all(ctx, TokenFilter(client_id, subject, (TOKEN_KIND_ACCESS,), True))
    refresh = {
        r.family_id: r
        for r in await _all(ctx, TokenFilter(client_id, subject, (TOKEN_KIND_REFRESH,), True))
    }
    listed = access[bounds["start"] : bounds["end"]]
    tokens = [_access_token(r, refresh.get(r.family_id)) for r in listed]
    return ok(
        f"{len(tokens)} of {len(access)} access tokens",
        start=bounds["start"],
        end=bounds["end"],
        client={"clientId": client.client_id, "clientName": client.name} if client else None,
        subject=subject,
        totalCount=len(access),
        accessTokens=tokens,
    )


async def _all(ctx: ServerContext, flt: TokenFilter) -> list[TokenRecord]:
    found: list[TokenRecord] = []
    cursor: str | None = None
    while len(found) < MAX_LISTED:
        page = await token_service.list_tokens(ctx, flt, token_service.MAX_PAGE, cursor)
        found.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    return found[:MAX_LISTED]


def _access_token(record: TokenRecord, refresh: TokenRecord | None) -> dict[str, Any]:
    return {
        "accessTokenHash": record.token_id,
        "refreshTokenHash": refresh.token_id if refresh else None,
        "clientId": record.client_id,
        "subject": record.subject,
        # Authlete has no name for Keyturn's migration_token grant: null, said in properties.
        "grantType": NAME_OF_GRANT.get(record.grant_type),
        "scopes": record.scope.split(),
        "accessTokenExpiresAt": ms(record.expires_at),
        "refreshTokenExpiresAt": ms(refresh.expires_at) if refresh else 0,
        "createdAt": ms(record.issued_at),
        "lastRefreshedAt": 0,
        "properties": [{"key": "keyturn.grant_type", "value": record.grant_type, "hidden": False}],
        "refreshTokenScopes": refresh.scope.split() if refresh else None,
    }


CREATE_UNSUPPORTED = (
    "refreshTokenDuration", "properties", "clientIdAliasUsed", "clientEntityIdUsed",
    "accessToken", "refreshToken", "accessTokenPersistent", "certificateThumbprint",
    "dpopKeyThumbprint", "authorizationDetails", "forExternalAttachment", "jwtAtClaims",
    "acr", "authTime",
)  # fmt: skip


async def token_create(request: Request) -> Response:
    ctx, body = await admitted(request, CREATE_UNSUPPORTED)
    name = text(body, "grantType")
    if name not in GRANT_NAMES:
        raise InvalidRequestError(f"grantType must be one of {', '.join(GRANT_NAMES)}")
    grant_type = GRANT_NAMES[name]
    client_id = text(body, "clientId")
    if client_id is None:
        raise InvalidRequestError("clientId is required")
    subject = text(body, "subject")
    if subject is None and grant_type != "client_credentials":
        raise InvalidRequestError(f"subject is required for the {name} grant")
    issued = await token_service.create(
        ctx,
        client_id=client_id,
        subject=subject,
        scopes=words(body, "scopes"),
        audience=words(body, "resources"),
        lifetime=number(body, "accessTokenDuration"),
        grant_type=grant_type,
    )
    record = issued.record
    return ok(
        "the access token was created",
        grantType=name,
        clientId=record.client_id,
        subject=record.subject,
        scopes=record.scope.split(),
        accessToken=issued.access_token,
        jwtAccessToken=issued.access_token,
        tokenType="Bearer",
        expiresIn=issued.expires_in,
        expiresAt=ms(record.expires_at),
        tokenId=record.token_id,
    )


UPDATE_UNSUPPORTED = (
    "refreshTokenExpiresAt", "properties", "accessTokenExpiresAtUpdatedOnScopeUpdate",
    "refreshTokenExpiresAtUpdatedOnScopeUpdate", "accessTokenPersistent",
    "accessTokenValueUpdated", "certificateThumbprint", "dpopKeyThumbprint",
    "authorizationDetails", "forExternalAttachment",
)  # fmt: skip


async def token_update(request: Request) -> Response:
    ctx, body = await admitted(request, UPDATE_UNSUPPORTED)
    names = [n for n in ("accessToken", "accessTokenHash", "tokenId") if given(body, n)]
    if len(names) != 1:
        raise InvalidRequestError("name the token by one of accessToken, accessTokenHash, tokenId")
    identifier = text(body, names[0])
    assert identifier is not None
    record = await resolve(ctx, identifier)
    if record is None or record.kind != TOKEN_KIND_ACCESS:
        raise token_service.NotFoundError("no access token has that identifier")
    expires_ms = number(body, "accessTokenExpiresAt")
    updated = await token_service.update(
        ctx,
        record.token_id,
        scopes=words(body, "scopes"),
        expires_at=expires_ms // 1000 if expires_ms else None,
    )
    return ok(
        "the access token was updated",
        accessToken=body.get("accessToken"),
        tokenType="Bearer",
        accessTokenExpiresAt=ms(updated.expires_at),
        scopes=updated.scope.split(),
        tokenId=updated.token_id,
    )


async def token_delete(request: Request) -> Response:
    ctx = await authorized(request)
    record = await resolve(ctx, request.path_params["identifier"])
    if record is None:
        raise token_service.NotFoundError("no token has that identifier")
    await token_service.delete(ctx, record.token_id)
    return Response(status_code=204)


async def token_revoke(request: Request) -> Response:
    ctx, body = await admitted(request)
    access, refresh = text(body, "accessTokenIdentifier"), text(body, "refreshTokenIdentifier")
    client_id, subject = text(body, "clientIdentifier"), text(body, "subject")
    if access or refresh:
        if client_id or subject:
            raise InvalidRequestError("name a token, or a client and/or subject, not both")
        revoked: list[TokenRecord] = []
        for identifier, kind in ((access, TOKEN_KIND_ACCESS), (refresh, TOKEN_KIND_REFRESH)):
            record = await resolve(ctx, identifier) if identifier else None
            if record is not None and record.kind == kind:
                revoked += await token_service.revoke(ctx, record)
    elif client_id or subject:
        revoked = await token_service.revoke_all(ctx, client_id=client_id, subject=subject)
    else:
        raise InvalidRequestError(
            "give accessTokenIdentifier, refreshTokenIdentifier, clientIdentifier or subject"
        )
    return ok(f"{len(revoked)} tokens were revoked", count=len(revoked))


async def id_token_reissue(request: Request) -> Response:
    """Spend a refresh token of an OpenID grant for a new ID token, access and
    refresh token (rotation and reuse rules apply); ``accessToken`` is not needed."""
    ctx, body = await admitted(request, ("claims", "idtHeaderParams", "idTokenAudType"))
    value = text(body, "refreshToken")
    if value is None:
        raise InvalidRequestError("refreshToken is required")
    response = await refresh_token.reissue_id_token(ctx, value, subject=text(body, "sub"))
    return ok(
        "an ID token was reissued",
        responseContent=json.dumps(response),
        idToken=response["id_token"],
    )


Handler = Callable[[Request], Awaitable[Response]]


def _authlete(handler: Handler, caller_error: str | None = None) -> Handler:
    render = render_for(caller_error)

    async def endpoint(request: Request) -> Response:
        return await answer(request, lambda: handler(request), render)

    return endpoint


def routes() -> list[BaseRoute]:
    made: list[BaseRoute] = []
    for prefix in ("/api/{service_id}", "/api"):
        made += [
            Route(prefix + "/auth/token/get/list", _authlete(token_list), methods=["GET"]),
            Route(prefix + "/auth/token/create", _authlete(token_create), methods=["POST"]),
            Route(prefix + "/auth/token/update", _authlete(token_update), methods=["POST"]),
            Route(
                prefix + "/auth/token/delete/{identifier}",
                _authlete(token_delete),
                methods=["DELETE"],
            ),
            Route(prefix + "/auth/token/revoke", _authlete(token_revoke), methods=["POST"]),
            Route(
                prefix + "/idtoken/reissue",
                _authlete(id_token_reissue, "CALLER_ERROR"),
                methods=["POST"],
            ),
        ]
    return made
