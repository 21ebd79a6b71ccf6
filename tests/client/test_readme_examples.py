"""Every Python example in the README's "Client SDK" section runs against the fake server.

The examples are copy-paste ready, so they name real-looking URLs; the test
points every ``httpx2``/``httpx`` client and ``requests`` at an in-process
`FakeTokenServer` that knows those credentials, and plays the user for the
authorization-code example.
"""

from __future__ import annotations

import builtins
import re
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import requests

from keyturn.testing import FakeTokenServer
from tests.client.test_adapters import FakeServerAdapter, _httpx_transport

README = Path(__file__).resolve().parents[2] / "README.md"


OWN_API = "### Keyturn's own API (KeyturnClient)"
"""Its examples call a real server's admin API; tests/e2e/test_keyturn_client.py runs them."""


def readme_section(heading: str) -> str:
    """The README under ``heading`` (e.g. ``"## Client SDK"``), up to the next heading
    of the same or a higher level."""
    text = README.read_text()
    start = text.index(f"\n{heading}\n")
    level = len(heading.split(" ", 1)[0])
    after = re.compile(rf"\n#{{2,{level}}} ").search(text, start + 1)
    return text[start : after.start() if after else None]


def python_examples(section: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def sdk_examples() -> list[str]:
    return python_examples(readme_section("## Client SDK").replace(readme_section(OWN_API), ""))


EXAMPLES = sdk_examples()


def test_the_section_has_the_examples_it_promises() -> None:
    joined = "\n".join(EXAMPLES)
    for name in (
        "ClientCredentials",
        "PasswordCredentials",
        "AuthorizationCodeCredentials",
        "token_provider=",
        "on_token_update=",
        "FileTokenStore",
        "RedisTokenStore",
        "RequestsOAuth2Auth",
        "FakeTokenServer",
    ):
        assert name in joined, name


@pytest.fixture
def fake_world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeTokenServer:
    server = FakeTokenServer(
        # WEB_CLIENT_ID: the README's public client (no secret) and its redirect URI.
        clients={"my-client": "my-secret", "WEB_CLIENT_ID": ""},
        users={"alice": "wonderland"},
        redirect_uri="http://127.0.0.1:3000/callback",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))

    for cls in (httpx2.Client, httpx2.AsyncClient):
        original = cls.__init__

        def init(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> None:
            kwargs.setdefault("transport", server.transport())
            __original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", init)

    original_httpx = httpx.Client.__init__

    def httpx_init(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("transport", _httpx_transport(server))
        original_httpx(self, *args, **kwargs)

    monkeypatch.setattr(httpx.Client, "__init__", httpx_init)
    original_session = requests.Session.__init__

    def session_init(self: requests.Session) -> None:
        original_session(self)
        self.mount("https://", FakeServerAdapter(server))

    monkeypatch.setattr(requests.Session, "__init__", session_init)

    printed: list[str] = []

    def fake_print(*args: Any, **kwargs: Any) -> None:
        printed.append(" ".join(str(a) for a in args))

    def fake_input(prompt: str = "") -> str:
        url = printed[-1].split()[-1]
        return server.authorize(url)

    monkeypatch.setattr(builtins, "print", fake_print)
    monkeypatch.setattr(builtins, "input", fake_input)
    return server


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_readme_example_runs(example: str, fake_world: FakeTokenServer) -> None:
    stored_before: set[bytes] | None = None
    if "redis" in example:
        redis = pytest.importorskip("redis")
        probe = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=2)
        try:
            probe.ping()
            # The example uses the store's default prefix: remember what was there.
            stored_before = set(probe.scan_iter("keyturn:token:*"))
        except redis.ConnectionError as exc:
            pytest.skip(f"Redis is not reachable: {exc}")
        finally:
            probe.close()
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    try:
        exec(compile(example, "README.md", "exec"), namespace)
    finally:
        if stored_before is not None:  # leave nothing behind in the shared Redis
            with redis.Redis.from_url("redis://127.0.0.1:6379/0") as client:
                left = set(client.scan_iter("keyturn:token:*")) - stored_before
                if left:
                    client.delete(*left)
    if "FakeTokenServer(" not in example:  # that one checks its own server
        assert fake_world.token_requests >= 1
