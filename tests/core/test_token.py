from __future__ import annotations

import pytest

from keyturn.core.token import OAuthToken
from keyturn.testing import FakeClock


def _token(**kw: object) -> OAuthToken:
    base: dict[str, object] = {
        "access_token": "AT-secret",
        "refresh_token": "RT-secret",
        "id_token": "ID-secret",
        "expires_in": 300,
        "expires_at": 1_700_000_300.0,
        "scope": "read write",
        "extra": {"tenant": "t1", "nested": {"a": [1, 2]}},
    }
    base.update(kw)
    return OAuthToken(**base)  # type: ignore[arg-type]


def test_json_round_trip_keeps_everything() -> None:
    token = _token()
    again = OAuthToken.from_json(token.to_json())
    assert again == token
    assert again.extra["nested"] == {"a": [1, 2]}
    assert again.scopes == ("read", "write")


def test_repr_and_str_hide_secrets() -> None:
    token = _token()
    for text in (repr(token), str(token), f"{token}"):
        assert "secret" not in text
    assert "refresh_token=<set>" in repr(token)


def test_is_expired_with_leeway_on_injected_clock() -> None:
    clock = FakeClock(start=1_700_000_000.0)
    token = _token()
    assert not token.is_expired(clock=clock)
    assert token.is_expired(leeway=300, clock=clock)
    clock.advance(299)
    assert not token.is_expired(clock=clock)
    clock.advance(1)
    assert token.is_expired(clock=clock)


def test_unknown_expiry_is_not_expired() -> None:
    assert not OAuthToken(access_token="x").is_expired(leeway=10**9)


def test_authorization_header_normalises_bearer() -> None:
    assert OAuthToken(access_token="abc", token_type="bearer").authorization == "Bearer abc"


@pytest.mark.parametrize("bad", ["", None, 5])
def test_access_token_required(bad: object) -> None:
    with pytest.raises(ValueError, match="access_token"):
        OAuthToken(access_token=bad)  # type: ignore[arg-type]


def test_from_json_rejects_non_object() -> None:
    with pytest.raises(ValueError, match="object"):
        OAuthToken.from_json("[1]")


def test_same_grant_compares_access_and_refresh_token() -> None:
    token = _token()
    assert token.same_grant(token.clone_with(scope="other"))
    assert not token.same_grant(token.clone_with(refresh_token="RT-2"))
    assert not token.same_grant(None)
