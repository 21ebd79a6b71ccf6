"""The standard endpoints as calls: token (client credentials), revoke, introspect.

Each takes the `Caller` first, so a shell binds it as a method whole and the
signature is written once, here.

They reuse the core's builders and checks (`keyturn.core.grants`), so the
SDK's token manager and these calls cannot disagree on client authentication
or on what a valid token response is. Their errors are provider errors
(`OAuthError` subclasses with the RFC 6749 ``error`` code), not `ApiError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Literal, Protocol
from urllib.parse import urlencode

from keyturn.client.api._wire import Call, Endpoints, RequestOptions, apply_options
from keyturn.client.api.models import Introspection
from keyturn.core.clock import Clock
from keyturn.core.credentials import ClientAuthMethod, ClientCredentials, Credentials
from keyturn.core.errors import InvalidResponseError
from keyturn.core.grants import (
    grant_request,
    process_revocation_response,
    process_token_response,
    raise_for_error_response,
    revocation_request,
)
from keyturn.core.http import HttpRequest, HttpResponse
from keyturn.core.token import OAuthToken

ClientAuth = Literal["basic", "post", "client"]
"""How revoke and introspect authenticate the client: HTTP Basic (RFC 6749
§2.3.1), ``client_id``/``client_secret`` in the body, or Square's
``Authorization: Client <secret>`` with ``client_id`` in the body."""


class Caller(Protocol):
    """What the standard endpoints need of the calling client: where its server is,
    its clock, and its own credentials, with which it revokes and introspects."""

    @property
    def endpoints(self) -> Endpoints: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def credentials(self) -> Credentials | None: ...


def get_token(
    caller: Caller,
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    scope: str | Iterable[str] | None = None,
    audience: str | None = None,
    auth_method: ClientAuthMethod | None = None,
    request_options: RequestOptions | None = None,
) -> Call[OAuthToken]:
    """A new client-credentials token (this client's own unless others are named)."""
    own, ep = caller.credentials, caller.endpoints
    if client_id is None and own is not None:
        client_id, client_secret = own.client_id, client_secret or own.client_secret
    if not client_id or not client_secret:
        raise ValueError("get_token needs client_id= and client_secret=")
    creds = ClientCredentials(
        client_id=client_id,
        client_secret=client_secret,
        token_url=ep.token_url,
        scopes=tuple(scope.split() if isinstance(scope, str) else scope or ()),
        audience=audience,
        auth_method=auth_method,
        timeout=ep.timeout,
    )
    request = apply_options(grant_request(creds, ep.token_url), request_options)
    clock = caller.clock
    return Call(request, lambda response: process_token_response(response, now=clock.time()))


def revoke(
    caller: Caller,
    token: str,
    *,
    token_type_hint: str | None = None,
    client_auth: ClientAuth | None = None,
    request_options: RequestOptions | None = None,
) -> Call[None]:
    """RFC 7009: revoke one of the client's own tokens (200 even when the server knows none)."""
    url = caller.endpoints.revocation_url
    request = _token_form(url, caller.credentials, token, token_type_hint, client_auth)
    return Call(apply_options(request, request_options), process_revocation_response)


def introspect(
    caller: Caller,
    token: str,
    *,
    token_type_hint: str | None = None,
    client_auth: ClientAuth | None = None,
    request_options: RequestOptions | None = None,
) -> Call[Introspection]:
    """RFC 7662: what the server knows of a token; anything dead is just ``active: false``."""
    url = caller.endpoints.introspection_url
    request = _token_form(url, caller.credentials, token, token_type_hint, client_auth)
    return Call(apply_options(request, request_options), process_introspection_response)


def process_introspection_response(response: HttpResponse) -> Introspection:
    raise_for_error_response(response, "introspection endpoint")
    if response.status_code != 200:
        raise InvalidResponseError(
            f"introspection endpoint answered HTTP {response.status_code}, expected 200",
            status_code=response.status_code,
        )
    try:
        data = json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidResponseError(
            "introspection endpoint answered a body that is not JSON"
        ) from None
    return Introspection.from_json(data)


def _token_form(
    url: str,
    creds: Credentials | None,
    token: str,
    hint: str | None,
    client_auth: ClientAuth | None,
) -> HttpRequest:
    """The RFC 7009 §2.1 request; RFC 7662 §2.1 is the same form sent to another endpoint."""
    if creds is None:
        raise ValueError("revoke and introspect authenticate as a client: give client_id")
    if not token:
        raise ValueError("the token to revoke or introspect is empty")
    if client_auth == "client":
        return _square_request(url, creds, token, hint)
    if client_auth is not None:
        method = ClientAuthMethod.BASIC if client_auth == "basic" else ClientAuthMethod.POST
        creds = creds.clone_with(auth_method=method)
    return revocation_request(creds, url, token, hint)


def _square_request(url: str, creds: Credentials, token: str, hint: str | None) -> HttpRequest:
    """Square's ``Authorization: Client <secret>``, the client named in the body."""
    if not creds.client_secret:
        raise ValueError("'Authorization: Client' needs a client_secret")
    params = {"token": token, "client_id": creds.client_id, **creds.extra_params}
    if hint:
        params["token_type_hint"] = hint
    headers = {
        "Authorization": f"Client {creds.client_secret}",
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
    }
    return HttpRequest("POST", url, headers, urlencode(params).encode(), creds.timeout)
