"""The server's RFC 6750 challenge (admin API, userinfo) quotes like the guard's."""

from __future__ import annotations

import pytest

from keyturn.core.errors import InvalidTokenError
from keyturn.guard.bearer import challenge as guard_challenge
from keyturn.server.bearer import challenge
from tests.core.test_bearer import parse_challenge


@pytest.mark.parametrize("description", ['the "admin" scope', "C:\\tokens", 'x", scope="all'])
def test_quote_and_backslash_stay_inside_the_description(description: str) -> None:
    header = challenge("keyturn-admin", "invalid_token", description)["WWW-Authenticate"]
    params = parse_challenge(header)
    assert set(params) == {"realm", "error", "error_description"}
    assert '"' not in params["error_description"]
    assert "\\" not in params["error_description"]
    # The same bytes as the guard sends for the same error.
    guard = guard_challenge(InvalidTokenError(description), realm="keyturn-admin")
    assert guard.headers["WWW-Authenticate"] == header
