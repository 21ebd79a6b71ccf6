"""The admin API's client routes as calls (``/admin/v1/clients...``)."""

from __future__ import annotations

from collections.abc import Iterable

from keyturn.client.api._wire import (
    Call,
    Endpoints,
    RequestOptions,
    admin_call,
    expect_json,
    json_result,
    no_content,
    str_list,
    without_none,
)
from keyturn.client.api.models import Client, ClientWithSecret
from keyturn.core.errors import InvalidResponseError
from keyturn.core.http import HttpResponse


def list_all(ep: Endpoints, *, request_options: RequestOptions | None = None) -> Call[list[Client]]:
    return admin_call(ep, "GET", ("clients",), _client_list, options=request_options)


def _client_list(response: HttpResponse) -> list[Client]:
    data = expect_json(response, 200, "list clients")
    if not isinstance(data, list):
        raise InvalidResponseError("list clients: the body is not a JSON list")
    return [Client.from_json(item) for item in data]


def get(
    ep: Endpoints, client_id: str, *, request_options: RequestOptions | None = None
) -> Call[Client]:
    process = json_result(Client.from_json, 200, "get client")
    return admin_call(ep, "GET", ("clients", client_id), process, options=request_options)


def create(
    ep: Endpoints,
    *,
    client_id: str | None = None,
    name: str | None = None,
    is_public: bool | None = None,
    grant_types: Iterable[str] | None = None,
    scopes: Iterable[str] | str | None = None,
    audiences: Iterable[str] | str | None = None,
    redirect_uris: Iterable[str] | None = None,
    token_endpoint_auth_methods: Iterable[str] | None = None,
    access_token_lifetime: int | None = None,
    rate_limit: int | None = None,
    can_introspect: bool | None = None,
    request_options: RequestOptions | None = None,
) -> Call[ClientWithSecret]:
    """Register a client; ``None`` leaves a field to the server's default."""
    body = without_none(
        client_id=client_id,
        name=name,
        is_public=is_public,
        grant_types=_list(grant_types),
        scopes=str_list(scopes),
        audiences=str_list(audiences),
        redirect_uris=_list(redirect_uris),
        token_endpoint_auth_methods=_list(token_endpoint_auth_methods),
        access_token_lifetime=access_token_lifetime,
        rate_limit=rate_limit,
        can_introspect=can_introspect,
    )
    process = json_result(ClientWithSecret.from_json, 201, "create client")
    return admin_call(ep, "POST", ("clients",), process, body=body, options=request_options)


def update(
    ep: Endpoints,
    client_id: str,
    *,
    name: str | None = None,
    grant_types: Iterable[str] | None = None,
    scopes: Iterable[str] | str | None = None,
    audiences: Iterable[str] | str | None = None,
    redirect_uris: Iterable[str] | None = None,
    access_token_lifetime: int | None = None,
    rate_limit: int | None = None,
    can_introspect: bool | None = None,
    request_options: RequestOptions | None = None,
) -> Call[Client]:
    """Change the fields given; ``None`` keeps a field as it is."""
    body = without_none(
        name=name,
        grant_types=_list(grant_types),
        scopes=str_list(scopes),
        audiences=str_list(audiences),
        redirect_uris=_list(redirect_uris),
        access_token_lifetime=access_token_lifetime,
        rate_limit=rate_limit,
        can_introspect=can_introspect,
    )
    process = json_result(Client.from_json, 200, "update client")
    path = ("clients", client_id)
    return admin_call(ep, "PATCH", path, process, body=body, options=request_options)


def delete(
    ep: Endpoints, client_id: str, *, request_options: RequestOptions | None = None
) -> Call[None]:
    """Delete a client and every token it has (live ones are revoked first)."""
    process = no_content("delete client")
    return admin_call(ep, "DELETE", ("clients", client_id), process, options=request_options)


def rotate_secret(
    ep: Endpoints,
    client_id: str,
    *,
    overlap: int | None = None,
    request_options: RequestOptions | None = None,
) -> Call[ClientWithSecret]:
    """A new secret; the old one keeps working for ``overlap`` seconds (``None``: the
    server's ``KEYTURN_SECRET_ROTATION_OVERLAP``; 0: it stops at once)."""
    body = without_none(overlap=overlap)
    process = json_result(ClientWithSecret.from_json, 200, "rotate secret")
    path = ("clients", client_id, "rotate-secret")
    return admin_call(ep, "POST", path, process, body=body or None, options=request_options)


def expire_previous_secret(
    ep: Endpoints, client_id: str, *, request_options: RequestOptions | None = None
) -> Call[Client]:
    """End a rotation's overlap now: only the current secret works after it."""
    process = json_result(Client.from_json, 200, "expire previous secret")
    path = ("clients", client_id, "previous-secret")
    return admin_call(ep, "DELETE", path, process, options=request_options)


def _list(values: Iterable[str] | None) -> list[str] | None:
    if isinstance(values, str):
        raise TypeError("give a list of strings, not one string")
    return None if values is None else list(values)
