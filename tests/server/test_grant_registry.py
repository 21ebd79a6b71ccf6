"""The grant registry is the one list of token-endpoint grants (issue 15).

Client validation, the token endpoint and the RFC 8414 metadata all follow it,
and each grant's own module states its policy.
"""

from __future__ import annotations

import inspect
import re

import pytest

from keyturn.core.errors import InvalidRequestError, UnauthorizedClientError
from keyturn.server import grants
from keyturn.server.clients import build_client
from keyturn.server.endpoints.metadata import server_metadata
from keyturn.server.grants import common
from keyturn.server.grants.registry import (
    ADVERTISED_GRANTS,
    GRANTS,
    HANDLERS,
    KNOWN_GRANTS,
    PUBLIC_CLIENT_GRANTS,
    Grant,
)
from keyturn.server.secrets import Hasher
from keyturn.storage import records

HASHER = Hasher(b"r" * 32)
REDIRECT = ["https://app.example/cb"]


def test_every_stored_grant_name_has_exactly_one_registered_module() -> None:
    names = [grant.GRANT_TYPE for grant in GRANTS]
    assert len(names) == len(set(names))
    stored = {value for key, value in vars(records).items() if key.startswith("GRANT_")}
    assert set(names) == stored
    for grant in GRANTS:
        assert inspect.iscoroutinefunction(grant.handle)
        assert isinstance(grant.PUBLIC_CLIENTS, bool)
        assert isinstance(grant.ADVERTISED, bool)


def test_the_token_endpoint_and_metadata_derive_from_the_registry() -> None:
    assert grants.HANDLERS is HANDLERS
    assert list(HANDLERS) == list(KNOWN_GRANTS) == [g.GRANT_TYPE for g in GRANTS]
    assert all(HANDLERS[g.GRANT_TYPE] is g.handle for g in GRANTS)
    advertised = server_metadata("https://issuer.example", ["RS256"])["grant_types_supported"]
    assert advertised == list(ADVERTISED_GRANTS) == [g.GRANT_TYPE for g in GRANTS if g.ADVERTISED]
    # Today's policy, unchanged by the re-layering.
    assert PUBLIC_CLIENT_GRANTS == ("authorization_code", "refresh_token")
    assert set(ADVERTISED_GRANTS) == set(KNOWN_GRANTS)


@pytest.mark.parametrize("grant", GRANTS, ids=lambda g: g.GRANT_TYPE)
def test_client_validation_follows_each_grants_public_client_rule(grant: Grant) -> None:
    confidential = build_client(HASHER, grant_types=[grant.GRANT_TYPE], redirect_uris=REDIRECT)
    assert confidential.client.grant_types == (grant.GRANT_TYPE,)
    if grant.PUBLIC_CLIENTS:
        public = build_client(
            HASHER, public=True, grant_types=[grant.GRANT_TYPE], redirect_uris=REDIRECT
        )
        assert public.secret is None
    else:
        with pytest.raises(ValueError, match=f"cannot use {grant.GRANT_TYPE}"):
            build_client(
                HASHER, public=True, grant_types=[grant.GRANT_TYPE], redirect_uris=REDIRECT
            )


def test_an_unregistered_grant_is_refused_naming_the_registered_ones() -> None:
    expected = "unknown grant type 'urn:example:magic'; known: " + ", ".join(KNOWN_GRANTS)
    with pytest.raises(ValueError, match=re.escape(expected) + "$"):
        build_client(HASHER, grant_types=["urn:example:magic"])


def test_shared_steps_keep_the_grants_error_messages() -> None:
    assert common.require({"code": "abc"}, "code") == "abc"
    for params in ({}, {"code": ""}):
        with pytest.raises(InvalidRequestError, match=r": the code parameter is required$"):
            common.require(params, "code")
    public = build_client(
        HASHER, public=True, grant_types=["authorization_code"], redirect_uris=REDIRECT
    ).client
    with pytest.raises(
        UnauthorizedClientError, match=r": a public client cannot use the password grant$"
    ):
        common.refuse_public(public, "password")
    common.refuse_public(build_client(HASHER).client, "password")  # confidential: no error
    assert common.requested_audience({"resource": "r", "audience": "a"}) == "a"
    assert common.requested_audience({"resource": "r"}) == "r"
    assert common.requested_audience({}) is None
