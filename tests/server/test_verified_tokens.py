"""Introspection remembers checked signatures, and nothing that could go stale."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from keyturn.core.jose import Signer
from keyturn.server.verified_tokens import Verified, VerifiedTokens
from tests.server.conftest import Harness
from tests.server.test_revoke_introspect import introspect, token_for


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every signature check the server makes, by token."""
    seen: list[str] = []
    real = Signer.verify

    def counting(self: Signer, token: str) -> bool:
        seen.append(token)
        return real(self, token)

    monkeypatch.setattr(Signer, "verify", counting)
    return seen


def test_a_token_is_verified_once_and_its_record_read_every_time(
    server: Harness, verifications: list[str]
) -> None:
    cid, secret = server.create_client()
    token = token_for(server, cid, secret)
    first = introspect(server, cid, secret, token)
    assert first["active"] is True
    assert verifications == [token]
    assert introspect(server, cid, secret, token) == first
    assert verifications == [token]  # remembered
    # The record is read on every call: a change made elsewhere shows at once.
    jti, exp = first["jti"], first["exp"]
    server.call(lambda: server.ctx.storage.update_token(jti, expires_at=exp - 10))
    assert introspect(server, cid, secret, token)["exp"] == exp - 10
    server.call(server.ctx.storage.revoke_token, first["jti"], first["iat"])
    assert introspect(server, cid, secret, token) == {"active": False}
    assert verifications == [token]


def test_a_forged_signature_is_not_taken_for_the_remembered_token(
    server: Harness, verifications: list[str]
) -> None:
    cid, secret = server.create_client()
    token = token_for(server, cid, secret)
    assert introspect(server, cid, secret, token)["active"] is True
    signing_input, _, signature = token.rpartition(".")
    forged = f"{signing_input}.{signature[::-1]}"
    result = introspect(server, cid, secret, forged)
    assert result.get("active") is False
    assert forged in verifications  # checked, not remembered as the real one


def test_a_key_no_longer_held_makes_the_remembered_token_a_miss(
    server: Harness, verifications: list[str]
) -> None:
    cid, secret = server.create_client()
    token = token_for(server, cid, secret)
    assert introspect(server, cid, secret, token)["active"] is True
    keyring: Any = server.ctx.keyring
    kid = next(iter(keyring._signers))
    held = keyring._signers.pop(kid)  # the key dropped (a rotation's end)
    try:
        assert introspect(server, cid, secret, token).get("active") is False
        keyring._signers[kid] = copy.copy(held)  # reloaded: a new object
        assert introspect(server, cid, secret, token)["active"] is True
        assert verifications == [token, token]  # verified again with the new object
    finally:
        keyring._signers[kid] = held


def test_least_recently_used_tokens_are_forgotten_first() -> None:
    cache = VerifiedTokens(2)
    entry: Any = Verified("jti", "kid", object())
    cache.put("a", entry)
    cache.put("b", entry)
    assert cache.get("a") is entry  # now the most recent
    cache.put("c", entry)
    assert cache.get("b") is None
    assert cache.get("a") is entry
    assert len(cache) == 2
    off = VerifiedTokens(0)
    off.put("a", entry)
    assert off.get("a") is None
