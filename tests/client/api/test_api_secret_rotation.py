"""The SDK's halves of secret rotation: what it sends, and how it reads the secrets listed."""

from __future__ import annotations

import json

import pytest

from keyturn.client.api import ClientSecretInfo, client_ops
from keyturn.core.errors import InvalidResponseError
from tests.client.api.test_api_responses import CLIENT, EP, answer

CURRENT = {"label": "current", "created_at": 5, "expires_at": None}
PREVIOUS = {"label": "previous", "created_at": 1, "expires_at": 9}


def test_rotation_sends_the_overlap_only_when_given() -> None:
    plain = client_ops.rotate_secret(EP, "svc").request
    assert (plain.method, plain.url, plain.body) == (
        "POST",
        "https://auth.example/admin/v1/clients/svc/rotate-secret",
        b"",
    )
    for overlap in (0, 120):
        sent = client_ops.rotate_secret(EP, "svc", overlap=overlap).request
        assert json.loads(sent.body) == {"overlap": overlap}
        assert sent.headers["Content-Type"] == "application/json"
    ended = client_ops.expire_previous_secret(EP, "svc").request
    assert (ended.method, ended.url, ended.body) == (
        "DELETE",
        "https://auth.example/admin/v1/clients/svc/previous-secret",
        b"",
    )


def test_the_working_secrets_are_read_with_their_expiry() -> None:
    client = client_ops.expire_previous_secret(EP, "svc").process(
        answer(200, {**CLIENT, "secrets": [CURRENT, PREVIOUS]})
    )
    assert client.secrets == (
        ClientSecretInfo(label="current", created_at=5, expires_at=None),
        ClientSecretInfo(label="previous", created_at=1, expires_at=9),
    )
    assert "secrets" not in client.extra
    # A server from before rotation sends no list: no secrets known, not an error.
    assert client_ops.get(EP, "svc").process(answer(200, CLIENT)).secrets == ()


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        ("current", "'secrets' must be a list"),
        (["current"], "client secret is not a JSON object"),
        ([{**CURRENT, "expires_at": "never"}], "'expires_at' must be an integer or null"),
        ([{"created_at": 1, "expires_at": None}], "'label' is missing"),
    ],
)
def test_a_malformed_secrets_list_is_an_invalid_response(secrets: object, message: str) -> None:
    with pytest.raises(InvalidResponseError, match=message):
        client_ops.get(EP, "svc").process(answer(200, {**CLIENT, "secrets": secrets}))
