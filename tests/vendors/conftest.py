"""Vendor SDKs against a real ``keyturn serve`` (SQLite and PostgreSQL, see tests/e2e).

`Surfaces` looks at a token the way Keyturn's own front ends do: RFC 7662
introspection and RFC 7009 revocation, the admin API and the CLI, so each
vendor test can show that its token is the same record everywhere.
"""

from __future__ import annotations

import gc
import json
import warnings
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tests.e2e.conftest import LiveServer, live_server

__all__ = ["LiveServer", "Surfaces", "live_server"]

pytestmark = pytest.mark.e2e

SDK_WARNINGS = [
    pytest.mark.filterwarnings("ignore::Warning:pydantic._internal._config"),
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20"),
    # candidhealth's token provider makes an httpx.Client of its own that nothing
    # can close; its socket is collected, with a ResourceWarning, in a later test.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
"""The vendors' generated models still use pydantic v1 configs (their warning, not ours):
for each test module's ``pytestmark``; their import here, at collection, is quiet too."""

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import authlete.api.authlete_api_impl  # noqa: F401
    import candid.client
    import candid.resources.auth.resources.default.client  # noqa: F401
    import square.client
    import square.o_auth.client  # noqa: F401

_ADMINS: dict[str, dict[str, Any]] = {}


def admin_client(server: LiveServer) -> dict[str, Any]:
    """One admin client per server (``keyturn:admin``), made with the real CLI."""
    if server.url not in _ADMINS:
        _ADMINS[server.url] = server.create_client(
            "--name", "vendor-admin", "--scope", "keyturn:admin", "--can-introspect"
        )
    return _ADMINS[server.url]


class Surfaces:
    """Keyturn's own ways of seeing and revoking a token."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.admin = admin_client(server)

    def admin_token(self) -> str:
        r = httpx2.post(
            self.server.token_url,
            data={"grant_type": "client_credentials"},
            auth=(self.admin["client_id"], self.admin["client_secret"]),
        )
        assert r.status_code == 200, r.text
        token: str = r.json()["access_token"]
        return token

    def admin_api(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        headers = {"Authorization": "Bearer " + self.admin_token()}
        return httpx2.request(
            method, self.server.url + "/admin/v1" + path, headers=headers, **kwargs
        )

    def admin_list(self, client_id: str, *, active: bool | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"client_id": client_id}
        if active is not None:
            params["active"] = str(active).lower()
        r = self.admin_api("GET", "/tokens", params=params)
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662, asked by the admin client (which may introspect any token)."""
        r = httpx2.post(
            self.server.url + "/oauth/introspect",
            data={"token": token},
            auth=(self.admin["client_id"], self.admin["client_secret"]),
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def rfc_revoke(self, token: str, client_id: str, client_secret: str) -> None:
        r = httpx2.post(
            self.server.url + "/oauth/revoke",
            data={"token": token},
            auth=(client_id, client_secret),
        )
        assert r.status_code == 200, r.text

    def cli(self, *args: str) -> Any:
        done = self.server.cli(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def cli_list(self, client_id: str) -> list[dict[str, Any]]:
        listed = self.cli("tokens", "list", "--client-id", client_id)
        items: list[dict[str, Any]] = listed["items"]
        return items


@pytest.fixture(autouse=True)
def _collect_sdk_sockets() -> Iterator[None]:
    """Collect, quietly, the sockets of the httpx clients the SDKs made and never closed,
    before the next test (in any directory) would see their ResourceWarning."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture
def surfaces(live_server: LiveServer) -> Surfaces:
    return Surfaces(live_server)
