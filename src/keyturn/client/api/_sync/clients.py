# Generated from ../_async/clients.py by scripts/unasync.py: edit that file, not this one.
"""``client.clients``: the admin API's client routes."""

from __future__ import annotations

import builtins
from collections.abc import Iterable

from keyturn.client.api import client_ops
from keyturn.client.api._sync._run import Run
from keyturn.client.api._wire import Endpoints, RequestOptions
from keyturn.client.api.models import Client, ClientWithSecret


class Clients:
    """``client.clients``: register, change, rotate and delete clients."""

    def __init__(self, run: Run, ep: Endpoints) -> None:
        self._run = run
        self._ep = ep

    def list(self, *, request_options: RequestOptions | None = None) -> builtins.list[Client]:
        return self._run(client_ops.list_all(self._ep, request_options))

    def get(self, client_id: str, *, request_options: RequestOptions | None = None) -> Client:
        return self._run(client_ops.get(self._ep, client_id, request_options))

    def create(
        self,
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
    ) -> ClientWithSecret:
        fields = {k: v for k, v in locals().items() if k not in ("self", "request_options")}
        return self._run(client_ops.create(self._ep, **fields, options=request_options))

    def update(
        self,
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
    ) -> Client:
        fields = {k: v for k, v in locals().items() if k not in ("self", "request_options")}
        return self._run(client_ops.update(self._ep, **fields, options=request_options))

    def delete(
        self,
        client_id: str,
        *,
        request_options: RequestOptions | None = None,
    ) -> None:
        self._run(client_ops.delete(self._ep, client_id, request_options))

    def rotate_secret(
        self,
        client_id: str,
        *,
        overlap: int | None = None,
        request_options: RequestOptions | None = None,
    ) -> ClientWithSecret:
        """A new secret (shown once); the old one works for ``overlap`` seconds more."""
        call = client_ops.rotate_secret(
            self._ep, client_id, overlap=overlap, options=request_options
        )
        return self._run(call)

    def expire_previous_secret(
        self, client_id: str, *, request_options: RequestOptions | None = None
    ) -> Client:
        """Stop the previous secret now (e.g. it leaked); returns the client as it is."""
        call = client_ops.expire_previous_secret(self._ep, client_id, request_options)
        return self._run(call)
