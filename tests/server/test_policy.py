"""Pure policy pieces: scopes, audiences, the rate limiter, body parsing, client rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyturn.core.errors import InvalidRequestError, InvalidScopeError, InvalidTargetError
from keyturn.server.clients import build_client
from keyturn.server.ratelimit import InMemoryRateLimiter
from keyturn.server.request_body import parse_form, parse_json
from keyturn.server.scopes import grant_audience, grant_scopes, parse_scope
from keyturn.server.secrets import Hasher

pytestmark = pytest.mark.anyio


def test_scope_parsing_and_subset() -> None:
    assert parse_scope("a  b a") == ("a", "b")
    assert parse_scope(None) == ()
    assert grant_scopes((), ("a", "b")) == ("a", "b")
    assert grant_scopes(("b",), ("a", "b")) == ("b",)
    with pytest.raises(InvalidScopeError, match="c"):
        grant_scopes(("a", "c"), ("a", "b"))
    with pytest.raises(InvalidScopeError):
        parse_scope('a "b"')


def test_audience_policy() -> None:
    assert grant_audience(None, (), "https://iss") == ("https://iss",)
    assert grant_audience(None, ("x", "y"), "d") == ("x",)
    assert grant_audience("y", ("x", "y"), "d") == ("y",)
    with pytest.raises(InvalidTargetError):
        grant_audience("z", ("x",), "d")


async def test_token_bucket_limits_and_refills() -> None:
    now = [0.0]
    limiter = InMemoryRateLimiter(clock=lambda: now[0])
    assert [await limiter.acquire("k", 2, 60) for _ in range(2)] == [None, None]
    wait = await limiter.acquire("k", 2, 60)
    assert wait == pytest.approx(30.0)
    assert await limiter.blocked_for("k", 2, 60) == pytest.approx(30.0)
    now[0] += 30
    assert await limiter.acquire("k", 2, 60) is None
    assert await limiter.acquire("other", 2, 60) is None
    assert await limiter.acquire("k", 0, 60) is None  # 0 = unlimited


@given(
    st.dictionaries(
        st.text(min_size=1).filter(lambda s: "\x00" not in s), st.text(min_size=1), max_size=5
    )
)
def test_form_round_trip(params: dict[str, str]) -> None:
    from urllib.parse import urlencode

    assert parse_form(urlencode(params).encode()) == params


@given(st.binary(max_size=200))
def test_garbage_bodies_never_crash(body: bytes) -> None:
    for parse in (parse_form, parse_json):
        try:
            result = parse(body)
        except InvalidRequestError:
            continue
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in result.items())


def test_client_rules() -> None:
    hasher = Hasher(b"k" * 32)
    new = build_client(hasher, scopes=["a,b", "c"])
    assert new.client.scopes == ("a", "b", "c")
    assert new.secret
    assert new.secret.startswith("kts_")
    assert len(new.secret) >= 43
    assert new.client.secret_hash == hasher.hash(new.secret)
    assert new.secret not in repr(new.client)
    with pytest.raises(ValueError, match="public"):
        build_client(hasher, public=True)
    with pytest.raises(ValueError, match="unknown grant"):
        build_client(hasher, grant_types=["magic"])
    with pytest.raises(ValueError, match="auth method"):
        build_client(hasher, auth_methods=["telepathy"])


def test_session_cookies_are_secure_outside_plain_http_localhost() -> None:
    from keyturn.server.sessions import cookie_is_secure

    assert not cookie_is_secure("http://localhost:8000")
    assert not cookie_is_secure("http://127.0.0.1:8000")
    assert cookie_is_secure("https://localhost:8443")
    assert cookie_is_secure("https://auth.example.com")
    assert cookie_is_secure("http://auth.example.com")
