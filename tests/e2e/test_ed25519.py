"""Ed25519 under one naming on every surface (issue 17, item 11).

``Ed25519`` (RFC 9864) and ``EdDSA`` (its older name) are accepted alike by the
settings, ``keyturn keys rotate --alg``, the key ring and the guard's default
allow-list; the metadata advertises what the JWKS publishes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import httpx2
import jwt as pyjwt
import pytest

from keyturn.core.jose import SUPPORTED_ALGS
from keyturn.guard import DEFAULT_ALGORITHMS, TokenVerifier
from keyturn.server.settings import Settings, SigningAlg
from tests.e2e.conftest import LiveServer, start_server, stop_server

pytestmark = pytest.mark.e2e


def test_every_surface_names_the_same_algorithms() -> None:
    assert set(get_args(SigningAlg)) == set(SUPPORTED_ALGS)
    assert set(DEFAULT_ALGORITHMS) == set(SUPPORTED_ALGS)
    for alg in SUPPORTED_ALGS:
        assert Settings(signing_alg=alg).signing_alg == alg


@pytest.fixture(scope="module", params=["Ed25519", "EdDSA"])
def ed_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    tmp: Path = tmp_path_factory.mktemp("ed")
    server = start_server(
        tmp,
        f"sqlite+aiosqlite:///{tmp / 'keyturn.db'}",
        # Keys rotated by the CLI reach this server within a second.
        extra_env={"KEYTURN_SIGNING_ALG": request.param, "KEYTURN_KEY_REFRESH_INTERVAL": "1"},
    )
    server.extra["alg"] = request.param
    yield server
    stop_server(server)


def token_of(server: LiveServer) -> str:
    client = server.create_client()
    r = httpx2.post(
        server.token_url,
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert r.status_code == 200, r.text
    value: str = r.json()["access_token"]
    return value


def test_the_server_signs_with_the_configured_name_and_the_guard_accepts_it(
    ed_server: LiveServer,
) -> None:
    alg = ed_server.extra["alg"]
    meta = httpx2.get(ed_server.url + "/.well-known/oauth-authorization-server").json()
    assert meta["access_token_signing_alg_values_supported"] == [alg]
    jwks = httpx2.get(meta["jwks_uri"]).json()
    assert [(k["alg"], k["crv"]) for k in jwks["keys"]] == [(alg, "Ed25519")]
    token = token_of(ed_server)
    assert pyjwt.get_unverified_header(token)["alg"] == alg
    with TokenVerifier(ed_server.url, ed_server.url) as verifier:  # default algorithms
        assert verifier.verify(token).subject


def test_a_key_rotated_under_the_other_name_signs_tokens_the_guard_accepts(
    ed_server: LiveServer,
) -> None:
    other = "EdDSA" if ed_server.extra["alg"] == "Ed25519" else "Ed25519"
    done = ed_server.cli("keys", "rotate", "--alg", other, "--delay", "0", "--json")
    assert done.returncode == 0, done.stderr
    kid = json.loads(done.stdout)["kid"]
    deadline = time.monotonic() + 30
    while True:  # the server picks the new key up at its next refresh
        token = token_of(ed_server)
        if pyjwt.get_unverified_header(token)["kid"] == kid or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert pyjwt.get_unverified_header(token) == {"alg": other, "kid": kid, "typ": "at+jwt"}
    with TokenVerifier(ed_server.url, ed_server.url) as verifier:
        assert verifier.verify(token).subject
