from __future__ import annotations

import json

import pytest

from keyturn.core.discovery import metadata_url, process_metadata_response
from keyturn.core.errors import InvalidResponseError
from keyturn.core.http import HttpResponse


def test_metadata_url_inserts_well_known_before_path() -> None:
    assert metadata_url("https://a.example") == (
        "https://a.example/.well-known/oauth-authorization-server"
    )
    assert metadata_url("https://a.example/tenant1") == (
        "https://a.example/.well-known/oauth-authorization-server/tenant1"
    )


def _resp(body: object) -> HttpResponse:
    return HttpResponse(200, {"content-type": "application/json"}, json.dumps(body).encode())


def test_metadata_is_checked() -> None:
    md = process_metadata_response(
        _resp({"issuer": "https://a", "token_endpoint": "https://a/t", "x": 1}), "https://a"
    )
    assert md.token_endpoint == "https://a/t"
    assert md.raw["x"] == 1
    with pytest.raises(InvalidResponseError, match="issuer"):
        process_metadata_response(_resp({"issuer": "https://evil"}), "https://a")
    with pytest.raises(InvalidResponseError, match="token_endpoint"):
        process_metadata_response(_resp({"issuer": "https://a", "token_endpoint": 3}), "https://a")
    with pytest.raises(InvalidResponseError, match="JSON"):
        process_metadata_response(HttpResponse(200, {}, b"<html>"), "https://a")
