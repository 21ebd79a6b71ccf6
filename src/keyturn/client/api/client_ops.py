"""The admin API's client routes as calls (``/admin/v1/clients...``)."""

from __future__ import annotations

from collections.abc import Iterable

from keyturn.client.api._wire import (
    Call,
    Endpoints,
    RequestOptions,
    admin_request,
    expect_json,
    json_result,
    no_content,
    str_list,
    without_none,
)
from keyturn.client.api.models import Client, ClientWithSecret
from keyturn.core.errors import InvalidResponseError
from keyturn.core.http import HttpResponse


def list_all(ep: Endpoints, options: RequestOptions | None = None) -> Call[list[Client]]:
    request = admin_request(ep, "GET", ep.admin_url("clients"), options=options)
    return Call(request, _client_list, admin=True)


def _client_list(response: HttpResponse) -> list[Client]:
    data = expect_json(response, 200, "list clients")
    if not isinstance(data, list):
        raise InvalidResponseError("list clients: the body is not a JSON list")
    return [Client.from_json(item) for item in data]


def get(ep: Endpoints, client_id: str, options: RequestOptions | None = None) -> Call[Client]:
    request = admin_request(ep, "GET", ep.admin_url("clients", client_id), options=options)
    return Call(request, json_result(Client.from_json, 200, "get client"), admin=True)


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
    options: RequestOptions | None = None,
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
    request = admin_request(ep, "POST", ep.admin_url("clients"), body=body, options=options)
    return Call(request, json_result(ClientWithSecret.from_json, 201, "create client"), admin=True)


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
    options: RequestOptions | None = None,
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
    url = ep.admin_url("clients", client_id)
    request = admin_request(ep, "PATCH", url, body=body, options=options)
    return Call(request, json_result(Client.from_json, 200, "update client"), admin=True)


def delete(ep: Endpoints, client_id: str, options: RequestOptions | None = None) -> Call[None]:
    """Delete a client and every token it has (live ones are revoked first)."""
    request = admin_request(ep, "DELETE", ep.admin_url("clients", client_id), options=options)
    return Call(request, no_content("delete client"), admin=True)


def rotate_secret(
    ep: Endpoints,
    client_id: str,
    *,
    overlap: int | None = None,
    options: RequestOptions | None = None,
) -> Call[ClientWithSecret]:
    """A new secret; the old one keeps working for ``overlap`` seconds (``None``: the
    server's ``KEYTURN_SECRET_ROTATION_OVERLAP``; 0: it stops at once)."""
    url = ep.admin_url("clients", client_id, "rotate-secret")
    body = without_none(overlap=overlap)
    request = admin_request(ep, "POST", url, body=body or None, options=options)
    return Call(request, json_result(ClientWithSecret.from_json, 200, "rotate secret"), admin=True)


def expire_previous_secret(
    ep: Endpoints, client_id: str, options: RequestOptions | None = None
) -> Call[Client]:
    """End a rotation's overlap now: only the current secret works after it."""
    url = ep.admin_url("clients", client_id, "previous-secret")
    request = admin_request(ep, "DELETE", url, options=options)
    return Call(request, json_result(Client.from_json, 200, "expire previous secret"), admin=True)


def _list(values: Iterable[str] | None) -> list[str] | None:
    if isinstance(values, str):
        raise TypeError("give a list of strings, not one string")
    return None if values is None else list(values)
