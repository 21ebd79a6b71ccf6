"""The authorization-code flow in headless Chromium, end to end.

The SDK builds the authorization URL, a real browser (Debian's Chromium driven
by Playwright) signs in on Keyturn's login page and answers the consent page,
the redirect comes back to a real local callback server, the SDK parses it and
exchanges the code, and the token is used for a call. Screenshots of the pages
are kept under ``artifacts/screenshots`` (not committed).
"""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from keyturn.client import AccessDeniedError, AuthorizationCodeCredentials, TokenManager
from tests.e2e.conftest import LiveServer, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).parents[2] / "artifacts" / "screenshots"
PASSWORD = "a long enough password"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class _Callback(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>Back at the app</title><p>Signed in.</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def callback_url() -> Iterator[str]:
    """The application's redirect target: a real server on a free loopback port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Callback)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/callback"
    server.shutdown()
    server.server_close()


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.mark.parametrize("live_server", ["sqlite"], indirect=True)
def test_code_flow_in_a_real_browser(
    live_server: LiveServer, browser: Any, callback_url: str
) -> None:
    done = live_server.cli(
        "users", "create", "alice", "--name", "Alice Liddell", "--password", PASSWORD
    )
    assert done.returncode == 0, done.stderr
    client = live_server.create_client(
        "--name",
        "Orders Dashboard",
        "--public",
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--redirect-uri",
        callback_url,
        "--scope",
        "openid",
        "--scope",
        "profile",
        "--scope",
        "orders:read",
    )
    credentials = AuthorizationCodeCredentials(
        client_id=client["client_id"],
        issuer=live_server.url,
        redirect_uri=callback_url,
        scopes=("openid", "profile", "orders:read"),
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context()
    page = context.new_page()

    with TokenManager(credentials) as manager:
        page.goto(manager.get_authorization_url())
        assert page.title() == "Sign in · Keyturn"
        assert "Orders Dashboard" in page.inner_text("main")
        page.fill("#username", "alice")
        page.fill("#password", PASSWORD)
        page.screenshot(path=str(ARTIFACTS / "login.png"), full_page=True)
        page.click("button[type=submit]")

        page.wait_for_selector("text=Orders Dashboard wants access")
        text = page.inner_text("main")
        assert "Signed in as alice" in text
        assert "orders:read" in text
        assert "Confirm who you are" in text
        page.screenshot(path=str(ARTIFACTS / "consent.png"), full_page=True)
        page.click("button[value=allow]")
        page.wait_for_url(callback_url + "?*")

        code = manager.parse_redirect(page.url)
        token = manager.fetch_token(code)
        assert token.refresh_token
        assert token.id_token
        info = httpx2.get(
            live_server.url + "/oauth/userinfo",
            headers={"Authorization": f"Bearer {token.access_token}"},
        )
        assert info.status_code == 200
        assert info.json()["preferred_username"] == "alice"

    # Deny: the same browser (already signed in) is asked again and says no.
    with TokenManager(credentials) as manager:
        page.goto(manager.get_authorization_url(additional_params={"prompt": "consent"}))
        page.wait_for_selector("text=Orders Dashboard wants access")
        page.click("button[value=deny]")
        page.wait_for_url(callback_url + "?*")
        with pytest.raises(AccessDeniedError):
            manager.parse_redirect(page.url)
    context.close()


@pytest.mark.parametrize("live_server", ["sqlite"], indirect=True)
def test_wrong_redirect_uri_stays_on_keyturn(
    live_server: LiveServer, browser: Any, callback_url: str
) -> None:
    client = live_server.create_client(
        "--public",
        "--grant",
        "authorization_code",
        "--redirect-uri",
        callback_url,
        "--scope",
        "openid",
    )
    page = browser.new_page()
    page.goto(
        f"{live_server.url}/oauth/authorize?response_type=code&client_id="
        f"{client['client_id']}&redirect_uri=https://evil.example/cb"
    )
    assert page.url.startswith(live_server.url)
    assert "Invalid redirect" in page.inner_text("main")
    page.screenshot(path=str(ARTIFACTS / "error.png"), full_page=True)
    page.close()
