"""Square's OAuth API: ObtainToken, RevokeToken, RetrieveTokenStatus, RenewToken.

What the ``squareup`` SDK sends, to ``{base_url}/oauth2/...``: JSON bodies
with Square's field names (a ``scopes`` array, booleans ``short_lived`` and
``use_jwt``), and ``Authorization: Client APPLICATION_SECRET`` where Square
wants the client's secret. The merchant is Keyturn's subject (the user who
authorized, or the client itself under ``client_credentials``).

- ``POST /oauth2/token``: the token endpoint's own grants (`grant_tokens`),
  answered in Square's fields (``expires_at`` in ISO 8601, ``merchant_id``,
  ``refresh_token_expires_at``). ``use_jwt`` is accepted and has no effect
  (Keyturn's access tokens are always JWTs); ``short_lived`` is echoed back
  and does not change the lifetime (the client's, 5 h by default, is shorter
  than Square's short-lived 24 h already). A Bearer header (the SDK's own
  token, if it has one) is ignored here: only the body authenticates.
- ``POST /oauth2/revoke``: revoking one token revokes every token of that
  client-merchant pair, as Square does; ``revoke_only_access_token`` keeps the
  refresh tokens (by merchant) or revokes just the token named. ``{"success": true}``.
- ``POST /oauth2/token/status``: a Bearer access token asks about itself.
- ``POST /oauth2/clients/{client_id}/access-token/renew``: any time before
  expiry and up to ``KEYTURN_SQUARE_RENEW_GRACE`` (15 days) after it.

Every failure is Square's ``{"errors": [{"category", "code", "detail", "field"}]}``
with the status the RFC endpoints would give.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from keyturn.core.bearer import MalformedAuthorizationError, bearer_credentials
from keyturn.core.errors import (
    InvalidClientError,
    InvalidRequestError,
    InvalidTokenError,
    OAuthError,
    UnsupportedMediaTypeError,
)
from keyturn.server import token_service
from keyturn.server.client_auth import authenticate_client
from keyturn.server.context import ServerContext, get_context
from keyturn.server.endpoints.token import check_issuance_rate, grant_tokens
from keyturn.server.request_body import JSON, is_storable, media_type, read_body
from keyturn.server.responses import json_response
from keyturn.server.vendors._common import answer, has_bearer, without_authorization
from keyturn.storage.records import TOKEN_KIND_ACCESS, Client, TokenRecord

TOKEN_PATH = "/oauth2/token"
REVOKE_PATH = "/oauth2/revoke"
STATUS_PATH = "/oauth2/token/status"
RENEW_PATH = "/oauth2/clients/{client_id}/access-token/renew"

GRANTS = ("authorization_code", "refresh_token", "migration_token", "client_credentials")

STRING, BOOLEAN, STRINGS = "string", "boolean", "array of strings"
OBTAIN_FIELDS = {
    "client_id": STRING,
    "client_secret": STRING,
    "grant_type": STRING,
    "code": STRING,
    "redirect_uri": STRING,
    "code_verifier": STRING,
    "refresh_token": STRING,
    "migration_token": STRING,
    "scopes": STRINGS,
    "short_lived": BOOLEAN,
    "use_jwt": BOOLEAN,
}
REVOKE_FIELDS = {
    "client_id": STRING,
    "access_token": STRING,
    "merchant_id": STRING,
    "revoke_only_access_token": BOOLEAN,
}
RENEW_FIELDS = {"access_token": STRING}
EXPECTED = {STRING: "EXPECTED_STRING", BOOLEAN: "EXPECTED_BOOLEAN", STRINGS: "EXPECTED_ARRAY"}


# -- errors ------------------------------------------------------------------------------
def square_error(
    code: str,
    detail: str,
    *,
    field: str | None = None,
    status: int = 400,
    category: str = "INVALID_REQUEST_ERROR",
) -> InvalidRequestError:
    """A Square error that names its own code (and field), for the renderer."""
    payload = {"category": category, "code": code, "field": field}
    return InvalidRequestError(detail, status_code=status, payload=payload)


def token_error(code: str, detail: str) -> InvalidTokenError:
    return InvalidTokenError(detail, payload={"category": "AUTHENTICATION_ERROR", "code": code})


BY_ERROR = {
    "invalid_client": ("AUTHENTICATION_ERROR", "UNAUTHORIZED", None),
    "invalid_token": ("AUTHENTICATION_ERROR", "UNAUTHORIZED", None),
    "unauthorized_client": ("AUTHENTICATION_ERROR", "FORBIDDEN", "grant_type"),
    "invalid_grant": ("INVALID_REQUEST_ERROR", "INVALID_VALUE", None),
    "invalid_scope": ("INVALID_REQUEST_ERROR", "INVALID_VALUE", "scopes"),
    "invalid_target": ("INVALID_REQUEST_ERROR", "INVALID_VALUE", None),
    "unsupported_grant_type": ("INVALID_REQUEST_ERROR", "INVALID_VALUE", "grant_type"),
    "slow_down": ("RATE_LIMIT_ERROR", "RATE_LIMITED", None),
    "temporarily_unavailable": ("API_ERROR", "SERVICE_UNAVAILABLE", None),
    "server_error": ("API_ERROR", "INTERNAL_SERVER_ERROR", None),
}
BY_STATUS = {
    404: "NOT_FOUND",
    408: "BAD_REQUEST",
    413: "REQUEST_ENTITY_TOO_LARGE",
    415: "INVALID_CONTENT_TYPE",
}


def render(exc: OAuthError) -> Response:
    category, code, field = BY_ERROR.get(
        exc.error, ("INVALID_REQUEST_ERROR", BY_STATUS.get(exc.status_code, "BAD_REQUEST"), None)
    )
    category = exc.payload.get("category") or category
    code = exc.payload.get("code") or code
    field = exc.payload.get("field") or field
    error: dict[str, str] = {
        "category": category,
        "code": code,
        "detail": exc.description or exc.error,
    }
    if field:
        error["field"] = field
    return json_response({"errors": [error]}, exc.status_code, exc.headers)


# -- parsing -----------------------------------------------------------------------------
async def read_json(request: Request, ctx: ServerContext, fields: dict[str, str]) -> dict[str, Any]:
    """The JSON body, each known field of its type; ``null`` is the field left out."""
    if media_type(request) != JSON:
        raise UnsupportedMediaTypeError(f"send the body as {JSON}")
    raw = await read_body(request, ctx.settings.max_body_bytes)
    try:
        body = json.loads(raw, object_pairs_hook=_no_duplicates)
    except OAuthError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise square_error("EXPECTED_JSON_BODY", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise square_error("EXPECTED_JSON_BODY", "the JSON body must be an object")
    values: dict[str, Any] = {}
    for name, value in body.items():
        kind = fields.get(name)
        if kind is None:
            known = ", ".join(fields)
            raise square_error("BAD_REQUEST", f"unknown field {name!r}; known: {known}", field=name)
        if value is None:
            continue
        if not _is(kind, value):
            raise square_error(EXPECTED[kind], f"{name} must be a {kind}", field=name)
        values[name] = value
    return values


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise square_error(
                "BAD_REQUEST", f"the field {key!r} appears more than once", field=key
            )
        seen[key] = value
    return seen


def _is(kind: str, value: Any) -> bool:
    if kind == BOOLEAN:
        return isinstance(value, bool)
    if kind == STRING:
        return isinstance(value, str) and is_storable(value)
    return isinstance(value, list) and all(isinstance(v, str) and is_storable(v) for v in value)


def required(values: dict[str, Any], name: str) -> str:
    value = values.get(name)
    if not value:
        raise square_error("MISSING_REQUIRED_PARAMETER", f"{name} is required", field=name)
    text: str = value
    return text


def iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- ObtainToken -------------------------------------------------------------------------
async def obtain_token(request: Request) -> Response:
    ctx = get_context(request)
    values = await read_json(request, ctx, OBTAIN_FIELDS)
    required(values, "client_id")
    grant_type = required(values, "grant_type")
    if grant_type not in GRANTS:
        raise square_error(
            "INVALID_VALUE", f"grant_type must be one of {', '.join(GRANTS)}", field="grant_type"
        )
    params = {k: v for k, v in values.items() if OBTAIN_FIELDS[k] == STRING and v != ""}
    scopes = values.get("scopes")
    if scopes is not None:
        if any(not s or " " in s for s in scopes):
            raise square_error("INVALID_VALUE", "each scope is one non-empty word", field="scopes")
        if scopes:
            params["scope"] = " ".join(scopes)
    if has_bearer(request):  # the SDK's own access token, if it was given one
        request = without_authorization(request)
    issued = await grant_tokens(ctx, request, params)
    record = await token_service.find_by_value(ctx, issued["access_token"])
    assert record is not None  # recorded before it was answered
    out: dict[str, Any] = {
        "access_token": issued["access_token"],
        "token_type": "bearer",
        "expires_at": iso(record.expires_at),
        "merchant_id": record.subject or record.client_id,
        "short_lived": bool(values.get("short_lived", False)),
    }
    if "refresh_token" in issued:
        refresh = await ctx.storage.find_token_by_hash(ctx.hasher.hash(issued["refresh_token"]))
        out["refresh_token"] = issued["refresh_token"]
        if refresh is not None:
            out["refresh_token_expires_at"] = iso(refresh.expires_at)
    if "id_token" in issued:
        out["id_token"] = issued["id_token"]
    return json_response(out)


# -- RevokeToken -------------------------------------------------------------------------
async def client_of(request: Request, ctx: ServerContext, client_id: str | None) -> Client:
    """The client named by ``client_id``, authenticated by ``Authorization: Client SECRET``."""
    if not request.headers.get("authorization"):
        raise InvalidClientError("send 'Authorization: Client APPLICATION_SECRET'")
    return await authenticate_client(ctx, request, {"client_id": client_id} if client_id else {})


async def revoke_token(request: Request) -> Response:
    ctx = get_context(request)
    values = await read_json(request, ctx, REVOKE_FIELDS)
    client = await client_of(request, ctx, required(values, "client_id"))
    value, merchant = values.get("access_token"), values.get("merchant_id")
    only_access = bool(values.get("revoke_only_access_token", False))
    if value and merchant:
        raise square_error(
            "CONFLICTING_PARAMETERS",
            "give access_token or merchant_id, not both",
            field="merchant_id",
        )
    if merchant:
        await token_service.revoke_all(
            ctx, client_id=client.client_id, subject=merchant, access_tokens_only=only_access
        )
        return json_response({"success": True})
    if not value:
        raise square_error(
            "MISSING_REQUIRED_PARAMETER", "give access_token or merchant_id", field="access_token"
        )
    record = await token_service.find_by_value(ctx, value)
    if record is None or record.client_id != client.client_id:
        raise square_error(
            "NOT_FOUND", "no token of this client has that value", field="access_token", status=404
        )
    if only_access or record.subject is None:
        await token_service.revoke(ctx, record)
    else:
        await token_service.revoke_all(ctx, client_id=client.client_id, subject=record.subject)
    return json_response({"success": True})


# -- RetrieveTokenStatus -----------------------------------------------------------------
async def live_access_token(ctx: ServerContext, value: str) -> TokenRecord:
    record = await token_service.find_by_value(ctx, value)
    if record is None or record.kind != TOKEN_KIND_ACCESS:
        raise token_error("UNAUTHORIZED", "the access token is unknown")
    if record.revoked_at is not None:
        raise token_error("ACCESS_TOKEN_REVOKED", "the access token was revoked")
    if record.expires_at <= ctx.clock():
        raise token_error("ACCESS_TOKEN_EXPIRED", "the access token has expired")
    return record


async def token_status(request: Request) -> Response:
    ctx = get_context(request)
    try:
        value = bearer_credentials(request.headers.getlist("authorization"), b64token=False)
    except MalformedAuthorizationError as exc:
        raise token_error("UNAUTHORIZED", str(exc)) from None
    if value is None:
        raise token_error("UNAUTHORIZED", "send the access token as 'Authorization: Bearer TOKEN'")
    record = await live_access_token(ctx, value)
    return json_response(
        {
            "scopes": record.scope.split(),
            "expires_at": iso(record.expires_at),
            "client_id": record.client_id,
            "merchant_id": record.subject or record.client_id,
        }
    )


# -- RenewToken --------------------------------------------------------------------------
async def renew_token(request: Request) -> Response:
    ctx = get_context(request)
    values = await read_json(request, ctx, RENEW_FIELDS)
    client = await client_of(request, ctx, request.path_params["client_id"])
    record = await token_service.find_by_value(ctx, required(values, "access_token"))
    if record is None or record.client_id != client.client_id or record.kind != TOKEN_KIND_ACCESS:
        raise square_error(
            "NOT_FOUND",
            "no access token of this client has that value",
            field="access_token",
            status=404,
        )
    if record.revoked_at is not None:
        raise token_error("ACCESS_TOKEN_REVOKED", "the access token was revoked")
    grace = ctx.settings.square_renew_grace
    if record.expires_at + grace < ctx.clock():
        raise token_error(
            "ACCESS_TOKEN_EXPIRED", f"the access token expired more than {grace} s ago"
        )
    await check_issuance_rate(ctx, client)
    issued = await token_service.successor(ctx, record)
    return json_response(
        {
            "access_token": issued.access_token,
            "token_type": "bearer",
            "expires_at": iso(issued.record.expires_at),
            "merchant_id": record.subject or record.client_id,
        }
    )


Handler = Callable[[Request], Awaitable[Response]]


def _square(handler: Handler) -> Handler:
    """``handler`` with every failure in Square's shape."""

    async def endpoint(request: Request) -> Response:
        return await answer(request, lambda: handler(request), render)

    return endpoint


def routes() -> list[BaseRoute]:
    return [
        Route(TOKEN_PATH, _square(obtain_token), methods=["POST"]),
        Route(REVOKE_PATH, _square(revoke_token), methods=["POST"]),
        Route(STATUS_PATH, _square(token_status), methods=["POST"]),
        Route(RENEW_PATH, _square(renew_token), methods=["POST"]),
    ]
