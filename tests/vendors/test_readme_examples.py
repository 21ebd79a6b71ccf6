"""The README's "Coming from Candid, Square or Authlete" examples run against a real server."""

from __future__ import annotations

import pytest

from tests.client.test_readme_examples import python_examples, readme_section
from tests.vendors.conftest import SDK_WARNINGS, LiveServer, Surfaces

pytestmark = [pytest.mark.e2e, *SDK_WARNINGS]

SECTION = "## Coming from Candid, Square or Authlete"


def test_the_vendor_examples_run(
    live_server: LiveServer, surfaces: Surfaces, monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = python_examples(readme_section(SECTION))
    assert [e for e in examples if "candid" in e and "square" not in e]
    assert len(examples) == 3
    app = live_server.create_client("--scope", "read")
    monkeypatch.setenv("KEYTURN_URL", live_server.url)
    monkeypatch.setenv("KEYTURN_CLIENT_ID", app["client_id"])
    monkeypatch.setenv("KEYTURN_CLIENT_SECRET", app["client_secret"])
    monkeypatch.setenv("KEYTURN_ADMIN_TOKEN", surfaces.admin_token())
    for example in examples:
        exec(compile(example, "README.md", "exec"), {"__name__": "__readme__"})
    # Candid's example made two tokens (the SDK's own fetch, then get_token), Square's one,
    # Authlete's one; Square's revoke took every token of the pair; Authlete's was deleted.
    tokens = surfaces.admin_list(app["client_id"])
    assert len(tokens) == 3
    assert all(t["active"] is False for t in tokens)
