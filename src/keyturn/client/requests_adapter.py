"""`RequestsOAuth2Auth`: the same token flow for ``requests`` users (``keyturn[requests]``).

``__call__`` runs the shared request flow up to the API request (exchanging a
token with its own ``requests.Session`` if needed) and attaches the header; a
response hook feeds the API's status back into the flow, which on a 401 with a
replayable body renews the token and the hook re-sends once - the way
requests' own digest auth does.
"""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from typing import Any

import requests
import requests.auth

from keyturn.client._drivers import SyncEffects, drive_sync
from keyturn.client._http import transport_error
from keyturn.client.manager import TokenManager
from keyturn.core.commands import Send, SendApi
from keyturn.core.credentials import Credentials
from keyturn.core.http import HttpRequest, HttpResponse
from keyturn.core.token import OAuthToken

__all__ = ["RequestsOAuth2Auth"]

Flow = Generator[Send | SendApi, Any, None]


def _attach(request: requests.PreparedRequest, token: OAuthToken) -> None:
    request.headers["Authorization"] = token.authorization


class RequestsOAuth2Auth(requests.auth.AuthBase):
    """``requests.get(url, auth=RequestsOAuth2Auth(credentials_or_manager))``."""

    def __init__(
        self,
        manager: TokenManager | Credentials,
        *,
        session: requests.Session | None = None,
        **options: Any,
    ) -> None:
        self.manager = (
            manager if isinstance(manager, TokenManager) else TokenManager(manager, **options)
        )
        self.session = session or requests.Session()

    def _send_token_request(self, request: HttpRequest) -> HttpResponse:
        try:
            response = self.session.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                data=request.body,
                timeout=request.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise transport_error(exc, request) from exc
        return HttpResponse(response.status_code, dict(response.headers), response.content)

    def _advance(self, flow: Flow, reply: Any) -> SendApi | None:
        """Run the flow until it wants the API request sent (or ends)."""
        error: Exception | None = None
        while True:
            try:
                cmd = flow.throw(error) if error is not None else flow.send(reply)
            except StopIteration:
                return None
            reply, error = None, None
            if isinstance(cmd, SendApi):
                return cmd
            try:
                reply = self._send_token_request(cmd.request)
            except Exception as exc:
                error = exc

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        replayable = r.body is None or isinstance(r.body, bytes | str)
        op = self.manager.core.request_flow(r, _attach, replayable)
        flow = drive_sync(op, SyncEffects(self.manager))
        if self._advance(flow, None) is not None:
            r.register_hook("response", partial(self._on_response, flow))  # type: ignore[no-untyped-call]
        return r

    def _on_response(
        self, flow: Flow, response: requests.Response, **kwargs: Any
    ) -> requests.Response:
        cmd = self._advance(flow, response.status_code)
        if cmd is None:
            return response
        response.content  # noqa: B018 - drain before reusing the connection
        response.close()
        replay: requests.PreparedRequest = cmd.request.copy()
        replay.hooks["response"] = []  # the flow is over after this one
        assert response.connection is not None
        second: requests.Response = response.connection.send(replay, **kwargs)
        second.history.append(response)
        second.request = replay
        flow.close()
        return second

    def __repr__(self) -> str:
        return f"RequestsOAuth2Auth({self.manager!r})"
