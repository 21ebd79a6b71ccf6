"""Candid Health's token endpoint: ``POST /api/auth/v2/token`` and ``/auth/v2/token``.

What the ``candidhealth`` SDK sends: a JSON body with ``client_id`` and
``client_secret`` and no ``grant_type`` (so these routes imply
``client_credentials``), to ``{base}/api/auth/v2/token``, with
``Authorization: Bearer <its current token>`` once it has one. A Bearer header
beside credentials in the body is ignored, not taken as client authentication.
Form bodies and an explicit ``grant_type`` work too; the rest is the token
endpoint's own path (`grant_tokens`), so limits, lockout and records are shared.

Errors keep their RFC 6749 fields and add Candid's ``errorName`` and
``content.message``, from which the SDK raises ``TooManyRequestsError`` (429,
with ``Retry-After``) and ``InvalidContentTypeError`` (415); any other status
arrives as its ``ApiError`` with this body.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from keyturn.core.errors import OAuthError
from keyturn.server.context import get_context
from keyturn.server.endpoints.token import grant_tokens
from keyturn.server.errors import bare_app
from keyturn.server.request_body import parse_params
from keyturn.server.responses import json_response
from keyturn.server.vendors._common import answer, has_bearer, without_authorization
from keyturn.storage.records import GRANT_CLIENT_CREDENTIALS

PATHS = ("/api/auth/v2/token", "/auth/v2/token")

ERROR_NAMES = {
    400: "HttpRequestValidationError",
    401: "UnauthorizedError",
    408: "HttpRequestValidationError",
    413: "HttpRequestValidationError",
    415: "InvalidContentTypeError",
    429: "TooManyRequestsError",
    503: "ServiceUnavailableError",
}


def candid_error(exc: OAuthError) -> Response:
    """The RFC 6749 body plus the fields the Candid SDK reads its typed errors from."""
    body: dict[str, object] = dict(exc.to_dict())
    body["errorName"] = ERROR_NAMES.get(exc.status_code, "InternalError")
    body["content"] = {"message": exc.description or exc.error}
    return json_response(body, exc.status_code, exc.headers)


async def _issue(request: Request) -> Response:
    ctx = get_context(request)
    params = await parse_params(request, ctx.settings.max_body_bytes)
    params.setdefault("grant_type", GRANT_CLIENT_CREDENTIALS)
    if "client_secret" in params and has_bearer(request):
        request = without_authorization(request)
    return json_response(await grant_tokens(ctx, request, params))


async def candid_token_endpoint(request: Request) -> Response:
    return await answer(request, lambda: _issue(request), candid_error)


candid_token_app = bare_app(candid_token_endpoint)
"""The endpoint as a bare ASGI app, for the app's token fast path (``app.py``)."""
