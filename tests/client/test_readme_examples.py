"""Every Python example in the README's "Client SDK" section runs against the fake server.

The examples are copy-paste ready, so they name real-looking URLs; the test
points every ``httpx2``/``httpx`` client and ``requests`` at an in-process
`FakeTokenServer` that knows those credentials, and plays the user for the
authorization-code example. It needs no server process, so it runs in every
quick run; tests/e2e/test_readme_examples.py runs the same examples (and the
README's other blocks) against a real ``keyturn serve``.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import requests

from keyturn.testing import FakeTokenServer
from tests.client.test_adapters import FakeServerAdapter, _httpx_transport
from tests.conftest import REDIS_PREFIX, redis_or_skip

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


@pytest.fixture
def readme_redis_prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The README's Redis store writes under this run's prefix, and its keys go afterwards.

    The example uses the store's default prefix, shared by anyone on that Redis:
    `RedisTokenStore` is replaced by a subclass whose default is this run's.
    """
    from keyturn.client.stores import redis_store

    client = redis_or_skip()
    prefix = REDIS_PREFIX + "readme-token:"

    class RunScopedRedisTokenStore(redis_store.RedisTokenStore):
        def __init__(self, client: Any, *, prefix: str = prefix, **options: Any) -> None:
            super().__init__(client, prefix=prefix, **options)

    monkeypatch.setattr(redis_store, "RedisTokenStore", RunScopedRedisTokenStore)
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_readme_example_runs(
    example: str, fake_world: FakeTokenServer, request: pytest.FixtureRequest
) -> None:
    if "redis" in example:
        prefix = request.getfixturevalue("readme_redis_prefix")
    exec(compile(example, "README.md", "exec"), {"__name__": "__readme__"})
    if "redis" in example:
        client = redis_or_skip()
        try:
            assert list(client.scan_iter(prefix + "*")), "the Redis store kept nothing"
        finally:
            client.close()
    if "FakeTokenServer(" not in example:  # that one checks its own server
        assert fake_world.token_requests >= 1
