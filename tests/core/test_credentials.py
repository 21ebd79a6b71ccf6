from __future__ import annotations

import pytest

from keyturn.core.credentials import (
    AuthorizationCodeCredentials,
    ClientAuthMethod,
    ClientCredentials,
    PasswordCredentials,
)
from keyturn.core.token import OAuthToken

URL = "https://auth.example/oauth/token"


def test_immutable_and_clone_with() -> None:
    creds = ClientCredentials(
        client_id="c",
        client_secret="s",
        token_url=URL,
        scopes="a b a",  # type: ignore[arg-type]
    )
    assert creds.scopes == ("a", "b")
    with pytest.raises(AttributeError):
        creds.client_id = "x"  # type: ignore[misc]
    token = OAuthToken(access_token="AT")
    clone = creds.clone_with(token=token, scopes=("c",))
    assert clone.token is token
    assert clone.scopes == ("c",)
    assert creds.token is None


def test_repr_hides_secrets() -> None:
    pw = PasswordCredentials(
        client_id="c", client_secret="SEKRIT1", token_url=URL, username="u", password="SEKRIT2"
    )
    assert "SEKRIT" not in repr(pw)
    assert "client_secret=<hidden>" in repr(pw)


def test_validation() -> None:
    with pytest.raises(ValueError, match="token_url or issuer"):
        ClientCredentials(client_id="c", client_secret="s")
    with pytest.raises(ValueError, match="https"):
        ClientCredentials(client_id="c", client_secret="s", token_url="http://auth.example/t")
    ClientCredentials(client_id="c", client_secret="s", token_url="http://127.0.0.1:9/t")
    with pytest.raises(ValueError, match="client_secret"):
        ClientCredentials(client_id="c", token_url=URL, auth_method=ClientAuthMethod.BASIC)
    with pytest.raises(ValueError, match="PKCE"):
        AuthorizationCodeCredentials(
            client_id="c", token_url=URL, redirect_uri="https://a/cb", use_pkce=False
        )


def test_cache_key_separates_clients_scopes_and_users() -> None:
    base = ClientCredentials(client_id="c", client_secret="s", token_url=URL)
    keys = {
        base.cache_key(),
        base.clone_with(client_id="d").cache_key(),
        base.clone_with(scopes=("x",)).cache_key(),
        base.clone_with(audience="api").cache_key(),
        base.clone_with(store_key="user-2").cache_key(),
        PasswordCredentials(
            client_id="c", client_secret="s", token_url=URL, username="u1", password="p"
        ).cache_key(),
        PasswordCredentials(
            client_id="c", client_secret="s", token_url=URL, username="u2", password="p"
        ).cache_key(),
    }
    assert len(keys) == 7
    assert base.cache_key() == base.clone_with(client_secret="rotated").cache_key()
    assert (
        base.clone_with(scopes=("a", "b")).cache_key()
        == base.clone_with(scopes=("b", "a")).cache_key()
    )
    user_key = PasswordCredentials(
        client_id="c", client_secret="s", token_url=URL, username="alice", password="p"
    ).cache_key()
    assert "alice" not in user_key
