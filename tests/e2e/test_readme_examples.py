"""The README's examples run against a real ``keyturn serve`` (issue 17, "Done means").

One server per module (SQLite in a temporary directory, a free loopback port).
The examples are copy-paste ready, so they name placeholders (``https://auth.example``,
``my-client``, ``CLIENT_ID``, ...). The test registers what they need on the real
server, through the README's own shell blocks where it has them (``keyturn users
create alice``, ``keyturn clients create --name web --public ...``), and replaces each
placeholder by a real value from the documented mappings below before running the
example. A placeholder no mapping knows fails the test, so a new example cannot
silently skip the real server.

``https://api.example`` is a real API on a free loopback port: a Starlette app behind
``keyturn.guard`` that verifies every token against the real server's JWKS and
records what it saw, so an example passes only if real tokens reached it.

Where each README example runs (the real-server column is this issue's requirement):

==========================================  ==========================================
README block                                run against a real server by
==========================================  ==========================================
Quick start: ``keyturn clients create``,    this module
``curl .../oauth/token``
Grants: ``keyturn users create``, web       this module (the fixture that registers
client                                      the SDK examples' user and client)
Token management: ``keyturn clients`` /     this module
``tokens ...``
Probes: ``curl .../readyz`` (both)          this module
Coming from Candid, Square or Authlete      tests/vendors/test_readme_examples.py
Client SDK (all but "Testing your code")    this module (and against the fake server
                                            in tests/client/test_readme_examples.py)
Client SDK, "Testing your code"             the fake server only: it *is* the fake's
                                            example (tests/client/test_readme_examples.py)
Keyturn's own API (KeyturnClient)           tests/e2e/test_keyturn_client.py
Resource-server guard (Starlette, FastAPI)  this module
==========================================  ==========================================

The blocks not run are listed in `NOT_RUN`, each with its reason.
"""

from __future__ import annotations

import ast
import contextlib
import html
import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from keyturn.client import ClientCredentials, TokenManager
from keyturn.guard import AccessTokenClaims, TokenVerifier
from keyturn.guard.starlette import BearerAuthMiddleware, access_token, exception_handlers
from keyturn.testing.live import KeyturnServer, start_keyturn_server
from keyturn.testing.ports import closed_port, free_port
from tests.client.test_readme_examples import (  # noqa: F401 - readme_redis_prefix: a fixture
    OWN_API,
    README,
    python_examples,
    readme_redis_prefix,
    readme_section,
)
from tests.conftest import REDIS_URL, redis_or_skip
from tests.e2e.conftest import start_server, stop_server

pytestmark = pytest.mark.e2e

TEXT = README.read_text()
KEYTURN_CLI = [sys.executable, "-m", "keyturn.cli"]
# The README's shell blocks call the CLI as `keyturn` (or `.venv/bin/keyturn`): this interpreter's.
CLI_NAMES = {"keyturn", ".venv/bin/keyturn"}
USER_PASSWORD = "wonderland"
"""What the test types at ``keyturn users create alice``'s prompt: the password the
README's password-grant example signs in with."""
REGISTERED_REDIRECT = "http://127.0.0.1:3000/callback"
"""The README registers this redirect URI and its example uses it: a real value, kept.
Nothing listens there; the test reads the redirect's ``Location`` instead."""

SDK = "## Client SDK"
GUARD = "## Resource-server guard"
FAKE_ONLY = "### Testing your code"
"""Its example drives `FakeTokenServer` by design; it has no server to point elsewhere."""
RUN_ELSEWHERE = {
    OWN_API: "tests/e2e/test_keyturn_client.py",
    "## Coming from Candid, Square or Authlete": "tests/vendors/test_readme_examples.py",
}
NOT_RUN = {
    # First line of a shell block -> why it is not run here.
    'python3 -m venv .venv && .venv/bin/pip install -e ".[server]" && .venv/bin/keyturn serve': (
        "installs into a new venv; every test here starts that same `keyturn serve`"
    ),
    'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]" && .venv/bin/python -m pytest': (
        "this is the test suite itself"
    ),
    'pip install "keyturn[postgres]"': (
        "installs a package and serves on port 8000 of every interface with a `keyturn` role;"
        " the PostgreSQL end-to-end tests run the same server"
    ),
    "sudo -u postgres createuser keyturn && sudo -u postgres createdb -O keyturn keyturn": (
        "host administration (sudo); tests/e2e/test_fleet.py runs the deployment"
    ),
    "sudo useradd --system --home /var/lib/keyturn --shell /usr/sbin/nologin keyturn": (
        "host administration (sudo, systemd); tests/e2e/test_deploy_units.py checks the units"
    ),
    "sudo apt-get install -y haproxy": "host administration; tests/e2e/test_fleet.py runs HAProxy",
    "for port in 8001 8002; do": "a systemd rolling restart; tests/e2e/test_fleet.py does it",
    "sudo cp deploy/systemd/keyturn-rotate-keys.{service,timer} /etc/systemd/system/": (
        "host administration (systemd)"
    ),
}


# --- README blocks --------------------------------------------------------------------


def section(heading: str) -> str:
    return readme_section(heading)


def subsections(text: str) -> list[tuple[str, str]]:
    """``(### heading, its text)`` for each level-3 part of a section."""
    parts = re.split(r"\n(### [^\n]+)\n", text)
    return list(zip(parts[1::2], parts[2::2], strict=True))


def fenced(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.DOTALL)


def shell_block(heading: str, index: int = 0) -> str:
    return fenced(section(heading), "bash")[index]


def shell_lines(block: str) -> list[tuple[list[str], str]]:
    """Each command of a bash block, split as the shell would, and the comment after it."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        comment = line.split("  #", 1)[1].strip() if "  #" in line else ""
        commands.append((shlex.split(line, comments=True), comment))
    return commands


# --- placeholders ---------------------------------------------------------------------

SHELL_PLACEHOLDER = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b|\[[^\]]*\]|https?://\S+")


def substitute_args(args: list[str], mapping: dict[str, str]) -> list[str]:
    """``args`` with every placeholder replaced; an unknown placeholder fails the test."""
    out = []
    for arg in args:
        for found in SHELL_PLACEHOLDER.findall(arg):
            if not found.startswith(tuple(mapping)):
                pytest.fail(
                    f"README shell example has a placeholder this test does not map: {found}"
                )
        for placeholder, value in mapping.items():
            arg = arg.replace(placeholder, value)
        out.append(arg)
    return out


CREDENTIAL_KEYWORDS = {"client_id", "client_secret", "username", "password"}


def substitute_python(
    example: str, mapping: dict[str, str], known: set[str], live: tuple[str, ...]
) -> str:
    """The example with its placeholders replaced by real values.

    Afterwards every URL in it must be a live one and every literal credential a
    registered one, else the test fails naming it.
    """
    for placeholder, value in mapping.items():
        example = example.replace(placeholder, value)
    for node in ast.walk(ast.parse(example)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for url in re.findall(r"\b[a-z][a-z0-9+.-]*://[^\s\"']+", node.value):
                if not url.startswith(live):
                    pytest.fail(f"README example has a URL this test does not map: {url}")
        if isinstance(node, ast.keyword) and node.arg in CREDENTIAL_KEYWORDS:
            given = node.value
            if isinstance(given, ast.Constant) and given.value not in known:
                pytest.fail(
                    f"README example has a {node.arg} this test does not map: {given.value!r}"
                )
    return example


# --- the real server and the real API -------------------------------------------------


@dataclass
class ResourceApi:
    """``https://api.example``: a real HTTP API guarded by keyturn.guard."""

    url: str
    seen: list[AccessTokenClaims] = field(default_factory=list)


@dataclass
class World:
    server: KeyturnServer
    api: ResourceApi
    user_id: str
    web_client_id: str
    sdk_client: dict[str, Any]

    def python_mapping(self) -> dict[str, str]:
        """README placeholder -> the real value it stands for (quoted where it is a literal)."""
        return {
            "https://auth.example": self.server.url,
            "https://api.example": self.api.url,
            '"my-client"': json.dumps(self.sdk_client["client_id"]),
            '"my-secret"': json.dumps(self.sdk_client["client_secret"]),
            '"WEB_CLIENT_ID"': json.dumps(self.web_client_id),
            '"redis://127.0.0.1:6379/0"': json.dumps(REDIS_URL),
        }

    def known_credentials(self) -> set[str]:
        """Credentials an example may name as they are: registered by the README's own commands."""
        return {
            self.sdk_client["client_id"],
            self.sdk_client["client_secret"],
            self.web_client_id,
            "alice",
            USER_PASSWORD,
        }

    def live(self) -> tuple[str, ...]:
        return (self.server.url, self.api.url, REGISTERED_REDIRECT, REDIS_URL)


def serve_in_thread(app: Any) -> tuple[str, Callable[[], None]]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", loop="asyncio")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the API did not start"
        assert time.monotonic() < deadline, "the API did not start in time"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=15)

    return f"http://127.0.0.1:{port}", stop


def resource_api(issuer: str) -> tuple[ResourceApi, Callable[[], None]]:
    verifier = TokenVerifier(issuer, audience=issuer)
    seen: list[AccessTokenClaims] = []

    async def things(request: Request) -> JSONResponse:
        claims = access_token(request)
        seen.append(claims)
        return JSONResponse({"things": [], "for": claims.subject})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await verifier.aclose()

    app = Starlette(
        routes=[Route("/things", things)],
        middleware=[Middleware(BearerAuthMiddleware, verifier=verifier)],
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
    url, stop = serve_in_thread(app)
    return ResourceApi(url, seen), stop


def run_cli(server: KeyturnServer, args: list[str], stdin: str | None = None) -> str:
    assert args[0] in CLI_NAMES, args
    done = server.cli(*args[1:], stdin=stdin)
    assert done.returncode == 0, f"$ {shlex.join(args)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def field_of(output: str, name: str) -> str:
    found = re.search(rf"(?:^|:){name}:\s+(\S+)", output, flags=re.MULTILINE)
    assert found, f"no {name} in:\n{output}"
    return found.group(1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = start_keyturn_server(tmp_path_factory.mktemp("readme-server"))
    try:
        api, stop_api = resource_api(server.url)
        try:
            # The README's "Grants" block: the user and the public web client its examples use.
            (user, _), (web, _) = shell_lines(shell_block("### Grants"))
            user_id = field_of(
                run_cli(server, user, stdin=f"{USER_PASSWORD}\n{USER_PASSWORD}\n"), "user_id"
            )
            web_client_id = field_of(run_cli(server, web), "client_id")
            # "my-client"/"my-secret": a confidential client for every SDK example (not in the
            # README: its examples only say "your client"), and orders:read for the guard's.
            sdk_client = server.create_client(
                "--name", "my-client", "--scope", "read", "--scope", "orders:read",
                "--grant", "client_credentials", "--grant", "password", "--grant", "refresh_token",
            )  # fmt: skip
            yield World(server, api, user_id, web_client_id, sdk_client)
        finally:
            stop_api()
    finally:
        server.stop()


# --- shell blocks ---------------------------------------------------------------------


def curl(args: list[str]) -> str:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_quick_start_client_and_curl(world: World) -> None:
    block = shell_block("## Quick start", 1)
    (create, _), (token_request, _) = shell_lines(block)
    output = run_cli(world.server, create)
    for shown in re.findall(r"^# (client_id|client_secret):", block, flags=re.MULTILINE):
        assert re.search(rf"^{shown}:", output, flags=re.MULTILINE), shown
    mapping = {
        "CLIENT_ID": field_of(output, "client_id"),
        "CLIENT_SECRET": field_of(output, "client_secret"),
        "http://127.0.0.1:8000": world.server.url,
    }
    answer = json.loads(curl(substitute_args(token_request, mapping)))
    shown_answer = json.loads(block.rsplit("# ", 1)[1])
    assert set(answer) == set(shown_answer)
    for name in ("token_type", "expires_in", "scope"):
        assert answer[name] == shown_answer[name], name
    assert answer["access_token"].startswith(shown_answer["access_token"].rstrip("."))


def test_token_management_commands(world: World) -> None:
    commands = shell_lines(shell_block("### Token management"))
    assert [args[:3] for args, _ in commands] == [
        ["keyturn", "clients", "create"],
        ["keyturn", "tokens", "list"],
        ["keyturn", "tokens", "create"],
        ["keyturn", "tokens", "revoke"],
        ["keyturn", "tokens", "revoke-all"],
        ["keyturn", "tokens", "purge"],
    ], "the block changed: teach this test its new placeholders"
    mapping: dict[str, str] = {"[--access-only]": "--access-only"}  # optional: run with it
    outputs = []
    for args, _ in commands:
        outputs.append(run_cli(world.server, substitute_args(args, mapping)))
        if args[1:3] == ["clients", "create"]:
            mapping["CLIENT_ID"] = field_of(outputs[-1], "client_id")
            secret = field_of(outputs[-1], "client_secret")
        if args[1:3] == ["tokens", "create"]:
            mapping["TOKEN_ID"] = field_of(outputs[-1], "token_id")
            minted = field_of(outputs[-1], "access_token")
    assert re.match(r"revoked 0 token\(s\)", outputs[4]), outputs[4]  # revoke already took it
    assert re.match(r"purged \d+ row\(s\)", outputs[5]), outputs[5]
    # The token the block minted, then revoked, is inactive at the server.
    introspected = httpx2.post(
        world.server.url + "/oauth/introspect",
        data={"token": minted},
        auth=(mapping["CLIENT_ID"], secret),
        timeout=10,
    )
    assert introspected.json() == {"active": False}


def transcript(block: str) -> list[tuple[str, list[str]]]:
    """``$ command`` lines of a plain block, each with the output shown under it."""
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    return steps


def test_readiness_probe_answers_as_shown(world: World, tmp_path: Path) -> None:
    block = next(b for b in fenced(section("### Probes and metrics"), "") if "$ curl" in b)
    (ready, ready_shown), (down, down_shown) = transcript(block)
    probe = shlex.split(ready, comments=True)
    answer = curl(substitute_args(probe, {"http://127.0.0.1:8000": world.server.url}))
    assert json.loads(answer) == json.loads(ready_shown[0])

    # "Redis configured, and down": a server whose Redis URL is a port nothing listens on.
    closed = closed_port()
    server = start_server(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'keyturn.db'}",
        extra_env={"KEYTURN_REDIS_URL": f"redis://127.0.0.1:{closed}/0"},
    )
    try:
        probe = shlex.split(down, comments=True)
        answer = curl(substitute_args(probe, {"http://127.0.0.1:8000": server.url}))
    finally:
        stop_server(server)
    head, _, body = answer.replace("\r\n", "\n").partition("\n\n")
    status, *headers = head.splitlines()
    assert status == down_shown[0]
    for shown in down_shown[1:-1]:
        assert shown.lower() in (h.lower() for h in headers), shown
    assert json.loads(body) == json.loads(down_shown[-1])


# --- Python: the Client SDK section ---------------------------------------------------

SDK_EXAMPLES = [
    (heading, example)
    for heading, text in subsections(section(SDK))
    if heading not in (OWN_API, FAKE_ONLY)
    for example in fenced(text, "python")
]


def play_the_user(authorization_url: str, server_url: str) -> str:
    """Sign in as alice on the real login page and allow on the consent page; the redirect."""

    def hidden(page: str) -> dict[str, str]:
        found = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
        return {k: html.unescape(v) for k, v in found}

    with httpx2.Client(base_url=server_url, timeout=10) as browser:
        page = browser.get(authorization_url)
        assert page.status_code == 200, page.text
        r = browser.post(
            "/oauth/login",
            data={**hidden(page.text), "username": "alice", "password": USER_PASSWORD},
        )
        assert r.status_code == 303, r.text
        consent = browser.get(r.headers["location"])
        assert consent.status_code == 200, consent.text  # prompt=consent: always asked
        r = browser.post("/oauth/authorize", data={**hidden(consent.text), "decision": "allow"})
        assert r.status_code in (302, 303), r.text
    location: str = r.headers["location"]
    assert location.startswith(REGISTERED_REDIRECT + "?")
    return location


def expectations(world: World, printed: list[str], tmp_path: Path) -> dict[str, Callable[[], None]]:
    """Per subsection, what proves its example did its work against the real server."""
    client_id = world.sdk_client["client_id"]

    def api_saw(*subjects: str) -> None:
        assert [(c.subject, c.client_id) for c in world.api.seen] == [
            (s, client_id) for s in subjects
        ]

    def client_credentials() -> None:
        api_saw(client_id)
        assert printed == ["200"]

    def password() -> None:
        api_saw(world.user_id)
        assert printed == [str({"things": [], "for": world.user_id}), "True"]

    def authorization_code() -> None:
        assert printed[0].startswith(f"Open this in a browser: {world.server.url}/")
        assert printed[1:] == [f"Signed in: {world.user_id}", "Grant ended at the provider: True"]

    def hooks() -> None:
        api_saw(client_id)
        assert printed[-1].startswith("Bearer {")
        assert any(line.startswith("token event: fetch_succeeded") for line in printed)
        assert json.loads((tmp_path / "token.json").read_text())["token_type"] == "Bearer"

    def stores() -> None:
        assert printed == ["two stores, two tokens"]  # each store's manager fetched its own
        assert list((tmp_path / ".cache/myapp/tokens").iterdir())

    def other_libraries() -> None:
        api_saw(client_id, client_id)
        assert printed == ["<Response [200]>", "<Response [200 OK]>"]

    return {
        "### Client credentials": client_credentials,
        "### Resource owner password": password,
        "### Authorization code (PKCE S256 on by default)": authorization_code,
        "### Hooks: token provider, token updates, events": hooks,
        "### Stores: memory, file, Redis": stores,
        "### Other HTTP libraries": other_libraries,
    }


@pytest.mark.parametrize(
    ("heading", "example"), SDK_EXAMPLES, ids=[h.removeprefix("### ") for h, _ in SDK_EXAMPLES]
)
def test_client_sdk_example_runs_against_the_real_server(
    heading: str,
    example: str,
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    printed: list[str] = []
    check = expectations(world, printed, tmp_path).get(heading)
    if check is None:
        pytest.fail(f"README example under {heading!r} has no expectation here: add one")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MYAPP_TOKEN_KEY", raising=False)
    redis_keys: list[bytes] = []
    if "redis" in example:
        prefix = request.getfixturevalue("readme_redis_prefix")
    source = substitute_python(
        example, world.python_mapping(), world.known_credentials(), world.live()
    )
    world.api.seen.clear()

    def capture(*args: Any, **kwargs: Any) -> None:
        printed.append(" ".join(str(a) for a in args))

    def answer(prompt: str = "") -> str:
        return play_the_user(printed[-1].split()[-1], world.server.url)

    namespace: dict[str, Any] = {"__name__": "__readme__", "print": capture, "input": answer}
    try:
        exec(compile(source, "README.md", "exec"), namespace)  # the README's own code
    finally:  # a script's managers die with it; here, close their pooled clients
        for value in namespace.values():
            if isinstance(value, TokenManager):
                value.close()
    if "redis" in example:
        with redis_or_skip() as client:
            redis_keys = list(client.scan_iter(prefix + "*"))
        assert redis_keys, "the Redis store kept nothing"
    check()


# --- Python: the guard section --------------------------------------------------------


def guard_examples(world: World) -> list[dict[str, Any]]:
    examples = python_examples(section(GUARD))
    assert len(examples) == 2, "a new guard example: teach this test about it"
    mapping = {"http://127.0.0.1:8000": world.server.url}
    namespaces = []
    for example in examples:
        source = substitute_python(example, mapping, set(), (world.server.url,))
        namespace: dict[str, Any] = {"__name__": "__readme__"}
        exec(compile(source, "README.md", "exec"), namespace)  # the README's own code
        namespaces.append(namespace)
    return namespaces


def sdk_token(world: World, *scopes: str) -> str:
    credentials = ClientCredentials(
        client_id=world.sdk_client["client_id"],
        client_secret=world.sdk_client["client_secret"],
        token_url=world.server.token_url,
        scopes=scopes,
    )
    with TokenManager(credentials) as manager:
        return manager.get_token().access_token


def test_guard_examples_verify_the_real_servers_tokens(world: World) -> None:
    starlette_example, fastapi_example = guard_examples(world)
    starlette_app, fastapi_app = starlette_example["app"], fastapi_example["app"]
    client_id = world.sdk_client["client_id"]
    allowed = {"Authorization": "Bearer " + sdk_token(world, "orders:read")}
    read_only = {"Authorization": "Bearer " + sdk_token(world, "read")}

    with TestClient(starlette_app) as api:
        ok = api.get("/orders", headers=allowed)
        assert (ok.status_code, ok.json()) == (200, {"for": client_id, "client": client_id})
        missing = api.get("/orders")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == 'Bearer realm="orders"'
        no_scope = api.get("/orders", headers=read_only)
        assert no_scope.status_code == 403
        assert 'error="insufficient_scope"' in no_scope.headers["www-authenticate"]
        assert starlette_example["verifier"]._async_client is not None  # it fetched the JWKS
    # The README's lifespan closed the client the verifier opened, on the loop that used it.
    assert starlette_example["verifier"]._async_client is None

    with TestClient(fastapi_app) as api:
        ok = api.get("/orders", headers=allowed)
        assert (ok.status_code, ok.json()) == (200, {"for": client_id})
        no_scope = api.get("/orders", headers=read_only)
        assert (no_scope.status_code, no_scope.json()["error"]) == (403, "insufficient_scope")
        verifier = fastapi_app.state.token_verifier
        assert verifier._async_client is not None
    assert verifier._async_client is None


# --- nothing left out -----------------------------------------------------------------


def test_every_python_example_is_run_against_a_real_server_somewhere() -> None:
    owned = {example for _, example in SDK_EXAMPLES} | set(python_examples(section(GUARD)))
    fake_only = set(fenced(dict(subsections(section(SDK)))[FAKE_ONLY], "python"))
    for heading, test_file in RUN_ELSEWHERE.items():
        assert (Path(__file__).parents[2] / test_file).exists(), test_file
        owned |= set(python_examples(section(heading)))
    left = [e.splitlines()[0] for e in fenced(TEXT, "python") if e not in owned | fake_only]
    assert not left, f"README Python examples no test runs against a real server: {left}"


def test_every_shell_block_is_run_or_says_why_not() -> None:
    run_here = {
        shell_block("## Quick start", 1),
        shell_block("### Grants"),
        shell_block("### Token management"),
    }
    for block in fenced(TEXT, "bash"):
        if block not in run_here:
            first = block.splitlines()[0]
            assert first in NOT_RUN, f"README shell block neither run nor excused: {first}"
    assert {b.splitlines()[0] for b in fenced(TEXT, "bash")} >= set(NOT_RUN), "stale NOT_RUN entry"


@pytest.mark.parametrize(
    ("source", "unknown"),
    [
        ('ClientCredentials(client_id="new-client", token_url="http://real")', "'new-client'"),
        ('get("https://elsewhere.example/x")', "https://elsewhere.example/x"),
        ('RedisTokenStore(redis.Redis.from_url("redis://cache:6379/0"))', "redis://cache:6379/0"),
    ],
)
def test_an_unmapped_python_placeholder_fails_loudly(source: str, unknown: str) -> None:
    with pytest.raises(pytest.fail.Exception, match=re.escape(unknown)):
        substitute_python(source, {}, set(), ("http://real",))


def test_an_unmapped_shell_placeholder_fails_loudly() -> None:
    with pytest.raises(pytest.fail.Exception, match="NEW_THING"):
        substitute_args(["keyturn", "tokens", "show", "NEW_THING"], {"TOKEN_ID": "x"})
    with pytest.raises(pytest.fail.Exception, match=re.escape("http://127.0.0.1:9000")):
        substitute_args(["curl", "http://127.0.0.1:9000/x"], {"http://127.0.0.1:8000": "x"})
