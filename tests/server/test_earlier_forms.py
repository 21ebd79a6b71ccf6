"""Keys and token records written before 8-character kids and short hashes still work.

Nothing rewrites them (benchmarks/README.md, "Smaller rows"): a key keeps its
43-character kid, and an access token's record the whole hex hash of its
signing input, until they leave. Here both meet the real stack, through HTTP
(token reader, `TokenIssuer.recorded_as`, the key ring), on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt as pyjwt
import pytest
from joserfc.jwk import JWKRegistry
from sqlalchemy import text

from tests.server.conftest import Harness, make_settings, run_harness
from tests.server.test_revoke_introspect import introspect, token_for


@pytest.fixture
def server(tmp_path: Path, own_database_url: str) -> Iterator[Harness]:
    # A database of its own: the test adds a signing key, which would change
    # the signer under servers that share the session's database.
    yield from run_harness(make_settings(tmp_path, own_database_url))


def test_a_key_and_a_record_in_the_earlier_forms_still_verify(server: Harness) -> None:
    ctx = server.ctx
    # A key as earlier versions made it: its kid is the whole thumbprint.
    new = ctx.keyring._new_record(ctx.keyring.alg, activates_at=int(time.time()))
    thumbprint = JWKRegistry.import_key(new.public_jwk).thumbprint()
    assert new.kid == thumbprint[:8]
    earlier = dataclasses.replace(
        new, kid=thumbprint, public_jwk=new.public_jwk | {"kid": thumbprint}
    )
    server.call(ctx.storage.add_signing_key, earlier)

    async def reload() -> None:
        await ctx.keyring.refresh(force=True)

    server.call(reload)
    cid, secret = server.create_client()
    token = token_for(server, cid, secret)
    assert pyjwt.get_unverified_header(token)["kid"] == thumbprint  # the newest key signs
    jti = pyjwt.decode(token, options={"verify_signature": False})["jti"]

    # Its record as earlier versions wrote it: the whole hash of the signing input.
    signing_input = token.rpartition(".")[0]
    assert server.call(ctx.storage.get_token, jti).token_hash == ctx.hasher.short_hash(
        signing_input
    )

    async def rewrite() -> None:
        async with ctx.storage.engine.begin() as conn:
            await conn.execute(
                text("UPDATE tokens SET token_hash = :h WHERE token_id = :jti"),
                {"h": ctx.hasher.hash(signing_input), "jti": jti},
            )

    server.call(rewrite)
    body = introspect(server, cid, secret, token)
    assert body["active"] is True
    assert body["jti"] == jti
    # The same jti with a wider scope, under the same header and signature, does not pass.
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    wider = json.dumps(claims | {"scope": "read write admin"}, separators=(",", ":"))
    forged = base64.urlsafe_b64encode(wider.encode()).decode().rstrip("=")
    assert introspect(server, cid, secret, f"{header}.{forged}.{signature}") == {"active": False}
    r = server.http.post(
        "/oauth/revoke", data={"token": token, "client_id": cid, "client_secret": secret}
    )
    assert r.status_code == 200
    assert introspect(server, cid, secret, token) == {"active": False}
