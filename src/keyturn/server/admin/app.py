"""The admin FastAPI app, mounted by the main app at ``/admin/v1``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match

from keyturn.core.errors import InvalidRequestError, OAuthError
from keyturn.server import client_service, limits, token_service
from keyturn.server.admin.auth import require_admin
from keyturn.server.admin.guard import AdminGuard
from keyturn.server.admin.models import (
    ClientCreate,
    ClientCreatedOut,
    ClientOut,
    ClientUpdate,
    ErrorBody,
    ImportedOut,
    ImportRequest,
    IssuedOut,
    PurgedOut,
    ReissuedOut,
    ReissueRequest,
    RevokeAllRequest,
    RevokedOut,
    RevokeRequest,
    RotateSecretRequest,
    TokenCreate,
    TokenOut,
    TokenPageOut,
    TokenUpdate,
)
from keyturn.server.context import ServerContext
from keyturn.server.errors import (
    fault_classes,
    fault_handler,
    http_error_handler,
    oauth_error_handler,
)
from keyturn.server.grants import refresh_token
from keyturn.server.lifecycle import is_draining
from keyturn.server.responses import json_response
from keyturn.storage.repository import TokenFilter

Admin = Annotated[ServerContext, Depends(require_admin)]

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        400: "Bad request (RFC 6749-style error body)",
        401: "No usable admin token",
        403: "The token lacks the keyturn:admin scope",
        404: "Not found",
        409: "Conflict",
        413: "Body too large",
        415: "Unsupported media type",
        429: "Rate limited",
    }.items()
}


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        problems.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
    error = InvalidRequestError("; ".join(problems) or "the request is not valid")
    return json_response(error.to_dict(), 400)


async def admin_http_error_handler(request: Request, exc: Exception) -> Response:
    """As the main app's, but ``Allow`` on a 405 lists every method of the path.

    Starlette names only the first route that matched the path, and the admin
    API registers one route per method.
    """
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        # The first route whose path matches decides the resource, as in routing.
        probe = {**request.scope, "method": "GET"}
        matched = next((r for r in router.routes if r.matches(probe)[0] != Match.NONE), None)
        path = getattr(matched, "path", None)
        allowed: set[str] = set()
        for route in router.routes:
            if getattr(route, "path", None) == path:
                allowed |= getattr(route, "methods", None) or set()
        if allowed:
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(sorted(allowed))}
    return await http_error_handler(request, exc)


async def reject_unknown_query(request: Request) -> None:
    """A misspelt filter (``?client=``) must not silently list everything."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    known = {p.alias for p in dependant.query_params} if dependant is not None else set()
    repeated = sorted(
        k for k in set(request.query_params) if len(request.query_params.getlist(k)) > 1
    )
    if repeated:
        raise InvalidRequestError(f"the query parameter {repeated[0]!r} appears more than once")
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        hint = f"; known: {', '.join(sorted(known))}" if known else ""
        raise InvalidRequestError(f"unknown query parameter {unknown[0]!r}{hint}")


router = APIRouter(dependencies=[Depends(reject_unknown_query)])


# -- tokens ----------------------------------------------------------------------------
@router.get("/tokens", response_model=TokenPageOut, tags=["tokens"])
async def list_tokens(
    ctx: Admin,
    # min_length=1: an empty ``?cursor=`` is no cursor the server handed out (and no id).
    client_id: Annotated[str | None, Query(min_length=1, max_length=limits.CLIENT_ID)] = None,
    subject: Annotated[str | None, Query(min_length=1, max_length=limits.SUBJECT)] = None,
    active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=token_service.MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> TokenPageOut:
    """Tokens newest first, filtered; follow ``next_cursor`` for more."""
    page = await token_service.list_tokens(
        ctx, TokenFilter(client_id=client_id, subject=subject, active=active), limit, cursor
    )
    now = ctx.clock()
    return TokenPageOut(
        items=[TokenOut.of(r, now) for r in page.items], next_cursor=page.next_cursor
    )


@router.post("/tokens", response_model=IssuedOut, status_code=201, tags=["tokens"])
async def create_token(ctx: Admin, body: TokenCreate) -> IssuedOut:
    """Mint an access token for a client (and subject) directly; the value is shown once."""
    issued = await token_service.create(ctx, **dict(body))
    return IssuedOut.of(issued, ctx.clock())


@router.post("/tokens/revoke", response_model=RevokedOut, tags=["tokens"])
async def revoke_token(ctx: Admin, body: RevokeRequest) -> RevokedOut:
    """Revoke one token by value or identifier (a refresh token takes its family)."""
    if body.token is not None:
        record = await token_service.find_by_value(ctx, body.token)
        if record is None:
            raise token_service.NotFoundError("no token with that value")
    else:
        assert body.token_id is not None
        record = await token_service.get_token(ctx, body.token_id)
    revoked = await token_service.revoke(ctx, record)
    return RevokedOut(revoked=len(revoked), token_ids=[r.token_id for r in revoked])


@router.post("/tokens/revoke-all", response_model=RevokedOut, tags=["tokens"])
async def revoke_all(ctx: Admin, body: RevokeAllRequest) -> RevokedOut:
    """Revoke every live token of a client and/or subject."""
    revoked = await token_service.revoke_all(ctx, **dict(body))
    return RevokedOut(revoked=len(revoked), token_ids=[r.token_id for r in revoked])


@router.post("/tokens/purge", response_model=PurgedOut, tags=["tokens"])
async def purge_tokens(ctx: Admin) -> PurgedOut:
    """Delete rows expired or revoked longer than the retention period ago, now.

    Stops early, ``complete: false``, once this server drains (SIGTERM): ask
    again, of a server that is not shutting down, for the rest."""
    done = await token_service.purge(ctx, stop=is_draining)
    return PurgedOut(purged=done.rows, complete=done.complete)


@router.post("/tokens/import", response_model=ImportedOut, status_code=201, tags=["tokens"])
async def import_tokens(ctx: Admin, body: ImportRequest) -> ImportedOut:
    """Import tokens from another server so nobody is logged out; each can later be
    exchanged once with the ``migration_token`` grant."""
    records = await token_service.import_legacy(
        ctx,
        [
            token_service.LegacyToken(
                client_id=t.client_id,
                expires_at=t.expires_at,
                token=t.token,
                token_sha256=t.token_sha256,
                subject=t.subject,
                scopes=tuple(t.scopes),
                audience=tuple(t.audience),
            )
            for t in body.tokens
        ],
    )
    return ImportedOut(imported=len(records), token_ids=[r.token_id for r in records])


@router.post("/tokens/reissue-id-token", response_model=ReissuedOut, tags=["tokens"])
async def reissue_id_token(ctx: Admin, body: ReissueRequest) -> ReissuedOut:
    """Authlete-style reissue: spend a refresh token of an OpenID grant for a new ID
    token with a new access and refresh token (rotation and reuse rules apply)."""
    return ReissuedOut(**await refresh_token.reissue_id_token(ctx, body.refresh_token))


@router.get("/tokens/{token_id}", response_model=TokenOut, tags=["tokens"])
async def get_token(ctx: Admin, token_id: str) -> TokenOut:
    return TokenOut.of(await token_service.get_token(ctx, token_id), ctx.clock())


@router.patch("/tokens/{token_id}", response_model=TokenOut, tags=["tokens"])
async def update_token(ctx: Admin, token_id: str, body: TokenUpdate) -> TokenOut:
    """Change scopes or expiry as introspection reports them (a JWT's claims stay signed)."""
    record = await token_service.update(
        ctx, token_id, scopes=body.scopes, expires_at=body.expires_at
    )
    return TokenOut.of(record, ctx.clock())


@router.delete("/tokens/{token_id}", status_code=204, tags=["tokens"])
async def delete_token(ctx: Admin, token_id: str) -> Response:
    """Forget a token (a live one is first put on the deny-list)."""
    await token_service.delete(ctx, token_id)
    return Response(status_code=204)


@router.post("/tokens/{token_id}/renew", response_model=IssuedOut, status_code=201, tags=["tokens"])
async def renew_token(ctx: Admin, token_id: str) -> IssuedOut:
    """A new access token like one in its last ``KEYTURN_RENEW_WINDOW`` seconds."""
    return IssuedOut.of(await token_service.renew(ctx, token_id), ctx.clock())


# -- clients ---------------------------------------------------------------------------
@router.get("/clients", response_model=list[ClientOut], tags=["clients"])
async def list_clients(ctx: Admin) -> list[ClientOut]:
    now = ctx.clock()
    return [ClientOut.of(c, now) for c in await ctx.storage.list_clients()]


@router.post("/clients", response_model=ClientCreatedOut, status_code=201, tags=["clients"])
async def create_client(ctx: Admin, body: ClientCreate) -> ClientCreatedOut:
    """Register a client; a confidential client's secret is shown once."""
    new = await client_service.create(
        ctx,
        client_id=body.client_id,
        name=body.name,
        public=body.is_public,
        grant_types=body.grant_types,
        scopes=body.scopes,
        audiences=body.audiences,
        redirect_uris=body.redirect_uris,
        auth_methods=body.token_endpoint_auth_methods,
        access_token_lifetime=body.access_token_lifetime,
        rate_limit=body.rate_limit,
        can_introspect=body.can_introspect,
    )
    return ClientCreatedOut(client=ClientOut.of(new.client, ctx.clock()), client_secret=new.secret)


@router.get("/clients/{client_id}", response_model=ClientOut, tags=["clients"])
async def get_client(ctx: Admin, client_id: str) -> ClientOut:
    return ClientOut.of(await token_service.get_client(ctx, client_id), ctx.clock())


@router.patch("/clients/{client_id}", response_model=ClientOut, tags=["clients"])
async def patch_client(ctx: Admin, client_id: str, body: ClientUpdate) -> ClientOut:
    changes = body.model_dump(exclude_unset=True)
    return ClientOut.of(await client_service.update(ctx, client_id, **changes), ctx.clock())


@router.delete("/clients/{client_id}", status_code=204, tags=["clients"])
async def delete_client(ctx: Admin, client_id: str) -> Response:
    """Delete a client and all its tokens (live ones go on the deny-list first)."""
    await client_service.delete(ctx, client_id)
    return Response(status_code=204)


@router.post(
    "/clients/{client_id}/rotate-secret", response_model=ClientCreatedOut, tags=["clients"]
)
async def rotate_secret(
    ctx: Admin, client_id: str, body: RotateSecretRequest | None = None
) -> ClientCreatedOut:
    """A new secret, shown once; the old one keeps working for the overlap, then stops.
    The body is optional."""
    overlap = body.overlap if body is not None else None
    new = await client_service.rotate_secret(ctx, client_id, overlap=overlap)
    return ClientCreatedOut(client=ClientOut.of(new.client, ctx.clock()), client_secret=new.secret)


@router.delete("/clients/{client_id}/previous-secret", response_model=ClientOut, tags=["clients"])
async def expire_previous_secret(ctx: Admin, client_id: str) -> ClientOut:
    """End a rotation's overlap now (after a leak, say): only the current secret works.
    Idempotent; answers the client as it is now."""
    client = await client_service.expire_previous_secret(ctx, client_id)
    return ClientOut.of(client, ctx.clock())


def create_admin_app(postgres: bool = False) -> FastAPI:
    """The admin API; ``postgres`` adds asyncpg's faults to the 503 handlers, as the app does."""
    app = FastAPI(
        title="Keyturn admin API",
        version="1",
        description="Manage tokens and clients. Authorise with a Keyturn access token that "
        "carries the keyturn:admin scope (client_credentials of an admin client).",
        docs_url=None,
        redoc_url=None,
        responses=ERRORS,
        exception_handlers={
            OAuthError: oauth_error_handler,
            RequestValidationError: validation_error_handler,
            HTTPException: admin_http_error_handler,
            **dict.fromkeys(fault_classes(postgres), fault_handler),
        },
    )
    app.include_router(router)
    app.add_middleware(AdminGuard)  # the token, then a bounded body, before FastAPI reads it
    app.openapi = lambda: _openapi_with_security(app)  # type: ignore[method-assign]
    return app


def _openapi_with_security(app: FastAPI) -> dict[str, Any]:
    """Declare the bearer scheme every route checks (``require_admin`` reads it itself)."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "adminToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        }
        schema["security"] = [{"adminToken": []}]
        _no_null_query_values(schema)
        app.openapi_schema = schema
    return app.openapi_schema


def _no_null_query_values(schema: dict[str, Any]) -> None:
    """An optional query parameter is left out, never ``null`` (a query string has no
    null): FastAPI writes ``str | None`` as ``anyOf: [string, null]``; say ``string``.

    Property-based clients (schemathesis) otherwise send values meant to be "neither
    a string nor null", which a query string can only carry as a string.
    """
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") != "query" or parameter.get("required"):
                    continue
                spec = parameter.get("schema", {})
                branches = [b for b in spec.get("anyOf", []) if b.get("type") != "null"]
                if len(branches) == 1 and len(branches) < len(spec["anyOf"]):
                    rest = {k: v for k, v in spec.items() if k != "anyOf"}
                    parameter["schema"] = {**branches[0], **rest}
