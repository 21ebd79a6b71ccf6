"""RFC 6750 on the wire, as the guard and the server both read and write it."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyturn.core.bearer import MalformedAuthorizationError, bearer_credentials, www_authenticate

# RFC 7235 §2.1: auth-param = token BWS "=" BWS ( token / quoted-string )
_AUTH_PARAM = re.compile(r'\s*([A-Za-z_]+)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def parse_challenge(value: str) -> dict[str, str]:
    """A strict reading of ``Bearer k="v", ...``: every character must belong to a param."""
    scheme, _, rest = value.partition(" ")
    assert scheme == "Bearer"
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _AUTH_PARAM.match(rest, position)
        assert match, f"not a quoted auth-param at {rest[position:]!r}"
        assert match.group(1) not in params, f"{match.group(1)} twice"
        params[match.group(1)] = match.group(2)
        position = match.end()
    return params


@pytest.mark.parametrize(
    "description",
    [
        'the token "abc" is unknown',
        "a back\\slash",
        "ends with a backslash \\",
        'x", scope="admin',  # an attempt to add an attribute
        "line\r\nSet-Cookie: a=b",
        "caf\u00e9 \u2603",
    ],
)
def test_description_cannot_leave_its_quoted_string(description: str) -> None:
    header = www_authenticate(realm="api", error="invalid_token", error_description=description)
    params = parse_challenge(header)
    assert set(params) == {"realm", "error", "error_description"}
    # RFC 6750 §3: only %x20-21 / %x23-5B / %x5D-7E survive.
    assert re.fullmatch(r"[\x20\x21\x23-\x5b\x5d-\x7e]*", params["error_description"])
    assert params["error_description"] == "".join(
        c for c in description if c not in '"\\' and " " <= c <= "~"
    )


def test_attributes_in_order_and_empty_ones_left_out() -> None:
    assert www_authenticate() == "Bearer"
    assert www_authenticate(realm="api") == 'Bearer realm="api"'
    assert www_authenticate(realm="api", error="insufficient_scope", scope="a b") == (
        'Bearer realm="api", error="insufficient_scope", scope="a b"'
    )
    assert www_authenticate(error="invalid_token", error_description="") == (
        'Bearer error="invalid_token"'
    )


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def-_~+/==", "abc.def-_~+/=="),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
        (["Bearer abc"], "abc"),
        (None, None),
        ([], None),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearerabc", None),
    ],
)
def test_reads_the_token_or_none(header: str | list[str] | None, token: str | None) -> None:
    assert bearer_credentials(header) == token


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer a b", "Bearer a,b", "Bearer a=b"])
def test_malformed_bearer_header(header: str) -> None:
    with pytest.raises(MalformedAuthorizationError, match="not 'Bearer <token>'"):
        bearer_credentials(header)


def test_repeated_header() -> None:
    with pytest.raises(MalformedAuthorizationError, match="exactly one"):
        bearer_credentials(["Bearer a", "Bearer b"])


def test_any_token_without_spaces_when_b64token_is_off() -> None:
    assert bearer_credentials("Bearer a,b|c", b64token=False) == "a,b|c"
    for header in ("Bearer", "Bearer a b"):
        with pytest.raises(MalformedAuthorizationError):
            bearer_credentials(header, b64token=False)


B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
"""RFC 6750 §2.1's b64token as a regular expression: the reference the fast check must match."""


@pytest.mark.parametrize(
    "token", ["=", "==", "a=", "a==", "=a", "a=b=", "é", "a\x00", "a\tb", "a;b", "A-z.0_~+/"]
)
def test_b64token_edges_match_the_grammar(token: str) -> None:
    expected = B64TOKEN.fullmatch(token) is not None
    if expected:
        assert bearer_credentials(f"Bearer {token}") == token
    else:
        with pytest.raises(MalformedAuthorizationError):
            bearer_credentials(f"Bearer {token}")


@given(st.text(alphabet=st.sampled_from("aZ09-._~+/=!,;é\x00\t%"), min_size=1, max_size=12))
def test_b64token_check_is_the_grammar(token: str) -> None:
    expected = B64TOKEN.fullmatch(token) is not None
    try:
        got = bearer_credentials(f"Bearer {token}") == token
    except MalformedAuthorizationError:
        got = False
    assert got is expected
