from __future__ import annotations

import json

import pytest

from keyturn.core.discovery import (
    is_absent,
    metadata_request,
    metadata_requests,
    metadata_url,
    metadata_urls,
    openid_configuration_url,
    process_metadata_response,
)
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


PATH_ISSUER = "https://idp.example/tenant/a"


def test_issuer_with_a_path_per_rfc_8414() -> None:
    """§3.1: well-known between host and path (a terminating slash dropped first)."""
    expected = "https://idp.example/.well-known/oauth-authorization-server/tenant/a"
    assert metadata_url(PATH_ISSUER) == expected
    assert metadata_url(PATH_ISSUER + "/") == expected
    assert metadata_request(PATH_ISSUER).url == expected
    assert metadata_url("https://idp.example:8443/") == (
        "https://idp.example:8443/.well-known/oauth-authorization-server"
    )
    md = process_metadata_response(_resp({"issuer": PATH_ISSUER}), PATH_ISSUER)
    assert md.issuer == PATH_ISSUER


@pytest.mark.parametrize(
    ("published", "configured"),
    [
        (PATH_ISSUER, PATH_ISSUER + "/"),
        (PATH_ISSUER + "/", PATH_ISSUER),
        ("https://IDP.example/tenant/a", PATH_ISSUER),
        ("https://idp.example", PATH_ISSUER),
    ],
)
def test_metadata_issuer_must_be_identical(published: str, configured: str) -> None:
    """§3.3: identical, so a trailing slash is a different issuer (it was accepted before)."""
    with pytest.raises(InvalidResponseError, match="issuer"):
        process_metadata_response(_resp({"issuer": published}), configured)


def test_openid_configuration_lives_after_the_path() -> None:
    """OIDC Discovery §4.1 (kept by RFC 8414 §5): appended, a terminating slash dropped."""
    expected = "https://idp.example/tenant/a/.well-known/openid-configuration"
    assert openid_configuration_url(PATH_ISSUER) == expected
    assert openid_configuration_url(PATH_ISSUER + "/") == expected
    assert metadata_urls(PATH_ISSUER) == (metadata_url(PATH_ISSUER), expected)
    assert [r.url for r in metadata_requests(PATH_ISSUER)] == list(metadata_urls(PATH_ISSUER))


@pytest.mark.parametrize(
    ("status", "absent"),
    [(404, True), (400, True), (403, True), (429, False), (500, False), (200, False)],
)
def test_only_a_client_error_means_the_document_is_absent(status: int, absent: bool) -> None:
    assert is_absent(HttpResponse(status, {}, b"")) is absent
