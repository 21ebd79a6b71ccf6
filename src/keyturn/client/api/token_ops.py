"""The admin API's token routes as calls (``/admin/v1/tokens...``).

Argument checks that the server would make anyway but that are plainly the
caller's mistake (both or neither of ``token`` and ``token_id``) raise
``ValueError`` here, before anything is sent: oauth4webapi's third kind of
error, "the caller misused the API", kept apart from what the server says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from keyturn.client.api._wire import (
    Call,
    Endpoints,
    RequestOptions,
    admin_call,
    expect_json,
    expect_status,
    json_result,
    no_content,
    str_list,
    without_none,
)
from keyturn.client.api.models import (
    ImportResult,
    IssuedToken,
    LegacyToken,
    RevokeResult,
    Token,
    TokenPage,
)
from keyturn.core.clock import Clock
from keyturn.core.errors import InvalidResponseError
from keyturn.core.grants import process_token_response
from keyturn.core.http import HttpResponse
from keyturn.core.token import OAuthToken


def list_pages(
    ep: Endpoints,
    *,
    client_id: str | None = None,
    subject: str | None = None,
    active: bool | None = None,
    limit: int | None = None,
    request_options: RequestOptions | None = None,
) -> Callable[[str | None], Call[TokenPage]]:
    """Tokens newest first, filtered; ``limit`` is the page size (server default 50).

    Nothing is sent here: what comes back makes the call of the page at a cursor
    (``None``: the first), and the clients' pagers fetch pages as they are iterated.
    """
    query = {"client_id": client_id, "subject": subject, "active": active, "limit": limit}
    process = json_result(TokenPage.from_json, 200, "list tokens")

    def page(cursor: str | None = None) -> Call[TokenPage]:
        at = {**query, "cursor": cursor}
        return admin_call(ep, "GET", ("tokens",), process, query=at, options=request_options)

    return page


def next_cursor(page: TokenPage, previous: str | None) -> str | None:
    """The cursor of the page after ``page``; a server that repeats itself is an error,
    not an endless loop."""
    if page.next_cursor is not None and page.next_cursor == previous:
        raise InvalidResponseError("list tokens: the server sent the same cursor twice")
    return page.next_cursor


def get(
    ep: Endpoints, token_id: str, *, request_options: RequestOptions | None = None
) -> Call[Token]:
    process = json_result(Token.from_json, 200, "get token")
    return admin_call(ep, "GET", ("tokens", token_id), process, options=request_options)


def create(
    ep: Endpoints,
    *,
    client_id: str,
    subject: str | None = None,
    scopes: Iterable[str] | str | None = None,
    audience: Iterable[str] | str | None = None,
    lifetime: int | None = None,
    grant_type: str | None = None,
    request_options: RequestOptions | None = None,
) -> Call[IssuedToken]:
    body = without_none(
        client_id=client_id,
        subject=subject,
        scopes=str_list(scopes),
        audience=str_list(audience),
        lifetime=lifetime,
        grant_type=grant_type,
    )
    process = json_result(IssuedToken.from_json, 201, "create token")
    return admin_call(ep, "POST", ("tokens",), process, body=body, options=request_options)


def update(
    ep: Endpoints,
    token_id: str,
    *,
    scopes: Iterable[str] | str | None = None,
    expires_at: int | None = None,
    request_options: RequestOptions | None = None,
) -> Call[Token]:
    """Change what introspection and the admin API report; ``None`` keeps a field."""
    body = without_none(scopes=str_list(scopes), expires_at=expires_at)
    process = json_result(Token.from_json, 200, "update token")
    path = ("tokens", token_id)
    return admin_call(ep, "PATCH", path, process, body=body, options=request_options)


def delete(
    ep: Endpoints, token_id: str, *, request_options: RequestOptions | None = None
) -> Call[None]:
    process = no_content("delete token")
    return admin_call(ep, "DELETE", ("tokens", token_id), process, options=request_options)


def revoke(
    ep: Endpoints,
    *,
    token: str | None = None,
    token_id: str | None = None,
    request_options: RequestOptions | None = None,
) -> Call[RevokeResult]:
    """By the token's value or by its identifier (``jti``): exactly one of them."""
    if (token is None) == (token_id is None):
        raise ValueError("give exactly one of token= and token_id=")
    body = {"token": token} if token is not None else {"token_id": token_id}
    process = json_result(RevokeResult.from_json, 200, "revoke token")
    path = ("tokens", "revoke")
    return admin_call(ep, "POST", path, process, body=body, options=request_options)


def revoke_all(
    ep: Endpoints,
    *,
    client_id: str | None = None,
    subject: str | None = None,
    access_tokens_only: bool = False,
    request_options: RequestOptions | None = None,
) -> Call[RevokeResult]:
    """Every live token of a client and/or subject; ``access_tokens_only`` keeps refresh
    tokens (Square's ``revoke_only_access_token``)."""
    if client_id is None and subject is None:
        raise ValueError("give client_id=, subject= or both: revoking everything is not offered")
    body = without_none(client_id=client_id, subject=subject)
    body["access_tokens_only"] = access_tokens_only
    process = json_result(RevokeResult.from_json, 200, "revoke all")
    path = ("tokens", "revoke-all")
    return admin_call(ep, "POST", path, process, body=body, options=request_options)


def renew(
    ep: Endpoints, token_id: str, *, request_options: RequestOptions | None = None
) -> Call[IssuedToken]:
    """A new access token like one in its last ``KEYTURN_RENEW_WINDOW`` seconds (Square's renew)."""
    process = json_result(IssuedToken.from_json, 201, "renew token")
    path = ("tokens", token_id, "renew")
    return admin_call(ep, "POST", path, process, options=request_options)


def import_(
    ep: Endpoints, tokens: Iterable[LegacyToken], *, request_options: RequestOptions | None = None
) -> Call[ImportResult]:
    """Record tokens of the server you migrate from; each can later be exchanged once with
    the ``migration_token`` grant."""
    body = {"tokens": [t.to_json() for t in tokens]}
    if not body["tokens"]:
        raise ValueError("give at least one legacy token to import")
    process = json_result(ImportResult.from_json, 201, "import tokens")
    path = ("tokens", "import")
    return admin_call(ep, "POST", path, process, body=body, options=request_options)


def reissue_id_token(
    ep: Endpoints,
    clock: Clock,
    refresh_token: str,
    *,
    request_options: RequestOptions | None = None,
) -> Call[OAuthToken]:
    """Authlete's reissue: spend a refresh token of an OpenID grant for a new ID token with a
    new access and refresh token. The answer is a token response, read by the core's checks."""
    if not refresh_token:
        raise ValueError("the refresh token is empty")
    body = {"refresh_token": refresh_token}

    def process(response: HttpResponse) -> OAuthToken:
        expect_status(response, 200, "reissue ID token")
        token = process_token_response(response, now=clock.time())
        if token.id_token is None or token.refresh_token is None:
            raise InvalidResponseError("reissue ID token: no id_token or refresh_token")
        return token

    path = ("tokens", "reissue-id-token")
    return admin_call(ep, "POST", path, process, body=body, options=request_options)


def purge(ep: Endpoints, *, request_options: RequestOptions | None = None) -> Call[int]:
    """Delete rows dead for longer than the retention period now; the count deleted."""
    return admin_call(ep, "POST", ("tokens", "purge"), _purged, options=request_options)


def _purged(response: HttpResponse) -> int:
    data = expect_json(response, 200, "purge tokens")
    purged = data.get("purged") if isinstance(data, dict) else None
    if not isinstance(purged, int) or isinstance(purged, bool):
        raise InvalidResponseError("purge tokens: field 'purged' must be an integer")
    return purged
