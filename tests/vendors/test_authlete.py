"""The ``authlete`` SDK (``AuthleteApiImpl``), unchanged, against a real ``keyturn serve``.

Pointed at Keyturn by its configuration's ``baseUrl``: API v3 with a Bearer
admin token as the service access token (any ``serviceApiKey`` names
Keyturn's one service), and API v2 with an admin client's id and secret as
the service API key and secret (HTTP Basic).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx2
import pytest
from authlete.api.authlete_api_exception import AuthleteApiException
from authlete.api.authlete_api_impl import AuthleteApiImpl
from authlete.conf.authlete_configuration import AuthleteConfiguration
from authlete.dto.id_token_reissue_action import IDTokenReissueAction
from authlete.dto.id_token_reissue_request import IDTokenReissueRequest
from authlete.dto.token_create_action import TokenCreateAction
from authlete.dto.token_create_request import TokenCreateRequest
from authlete.dto.token_revoke_request import TokenRevokeRequest
from authlete.dto.token_update_action import TokenUpdateAction
from authlete.dto.token_update_request import TokenUpdateRequest
from authlete.types.grant_type import GrantType

from tests.vendors.conftest import SDK_WARNINGS, LiveServer, Surfaces

pytestmark = [pytest.mark.e2e, *SDK_WARNINGS]

PASSWORD = "correct horse battery staple"


def api_v3(surfaces: Surfaces) -> AuthleteApiImpl:
    return AuthleteApiImpl(
        AuthleteConfiguration(
            {
                "apiVersion": "V3",
                "baseUrl": surfaces.server.url,
                "serviceApiKey": "715948317",
                "serviceAccessToken": surfaces.admin_token(),
            }
        )
    )


def api_v2(surfaces: Surfaces) -> AuthleteApiImpl:
    return AuthleteApiImpl(
        AuthleteConfiguration(
            {
                "baseUrl": surfaces.server.url,
                "serviceApiKey": surfaces.admin["client_id"],
                "serviceApiSecret": surfaces.admin["client_secret"],
            }
        )
    )


def create(api: AuthleteApiImpl, client_id: str, **fields: Any) -> Any:
    fields.setdefault("grantType", GrantType.CLIENT_CREDENTIALS)
    return api.tokenCreate(TokenCreateRequest({"clientId": client_id, **fields}))


@pytest.mark.parametrize("version", ["v3", "v2"])
def test_create_list_update_delete_revoke(
    version: str, live_server: LiveServer, surfaces: Surfaces
) -> None:
    api = api_v3(surfaces) if version == "v3" else api_v2(surfaces)
    app = live_server.create_client("--scope", "read", "--scope", "write")
    cid = app["client_id"]
    subject = "alice-" + secrets.token_hex(3)

    made = create(
        api,
        cid,
        grantType=GrantType.AUTHORIZATION_CODE,
        subject=subject,
        scopes=["read", "write"],
        accessTokenDuration=600,
    )
    assert made.action == TokenCreateAction.OK
    assert made.resultCode == "KT_OK"
    assert (made.clientId, made.subject, made.grantType) == (
        cid,
        subject,
        GrantType.AUTHORIZATION_CODE,
    )
    assert made.expiresIn == 600
    assert made.expiresAt % 1000 == 0
    info = surfaces.introspect(made.accessToken)
    assert info["active"] is True
    assert (info["sub"], info["scope"], info["jti"]) == (subject, "read write", made.tokenId)
    assert made.expiresAt == info["exp"] * 1000
    own = create(api, cid, scopes=["read"])
    assert own.subject == cid

    # List by client, and by subject; paged with start/end, newest first.
    listed = api.getTokenList(clientIdentifier=cid)
    assert listed.totalCount == 2
    assert listed.client.clientId == cid
    assert [t.accessTokenHash for t in listed.accessTokens] == [own.tokenId, made.tokenId]
    first = listed.accessTokens[1]
    assert first.grantType == GrantType.AUTHORIZATION_CODE
    assert first.scopes == ["read", "write"]
    assert first.accessTokenExpiresAt == made.expiresAt
    assert api.getTokenList(clientIdentifier=cid, start=1, end=2).accessTokens[0].subject == (
        subject
    )
    by_subject = api.getTokenList(subject=subject)
    assert [t.accessTokenHash for t in by_subject.accessTokens] == [made.tokenId]

    # Update by value: narrower scopes and a new expiry, seen by introspection.
    new_expiry = (info["exp"] - 60) * 1000
    updated = api.tokenUpdate(
        TokenUpdateRequest(
            {
                "accessToken": made.accessToken,
                "scopes": ["read"],
                "accessTokenExpiresAt": new_expiry,
            }
        )
    )
    assert updated.action == TokenUpdateAction.OK
    assert (updated.scopes, updated.accessTokenExpiresAt) == (["read"], new_expiry)
    info = surfaces.introspect(made.accessToken)
    assert (info["scope"], info["exp"]) == ("read", new_expiry // 1000)
    by_hash = api.tokenUpdate(
        TokenUpdateRequest({"accessTokenHash": made.tokenId, "scopes": ["read", "write"]})
    )
    assert by_hash.scopes == ["read", "write"]

    # Revoke by identifier: RFC 7662 and the admin API see it.
    revoked = api.tokenRevoke(TokenRevokeRequest({"accessTokenIdentifier": own.tokenId}))
    assert revoked.count == 1
    assert surfaces.introspect(own.accessToken) == {"active": False}
    # Delete by value: gone from the admin API and the CLI too.
    api.tokenDelete(made.accessToken)
    assert surfaces.introspect(made.accessToken) == {"active": False}
    assert made.tokenId not in {t["token_id"] for t in surfaces.admin_list(cid)}
    assert made.tokenId not in {t["token_id"] for t in surfaces.cli_list(cid)}

    # Revoke all of a subject.
    for _ in range(2):
        create(api, cid, grantType=GrantType.PASSWORD, subject=subject)
    assert api.tokenRevoke(TokenRevokeRequest({"subject": subject})).count == 2
    assert api.getTokenList(clientIdentifier=cid).totalCount == 0


def test_tokens_of_other_routes_are_listed_and_revoked(
    live_server: LiveServer, surfaces: Surfaces
) -> None:
    """A token from the RFC endpoint (or Square's, or Candid's) is in Authlete's list."""
    app = live_server.create_client("--scope", "read", "--grant", "client_credentials")
    cid, secret = app["client_id"], app["client_secret"]
    square = httpx2.post(
        live_server.url + "/oauth2/token",
        json={"client_id": cid, "client_secret": secret, "grant_type": "client_credentials"},
    )
    candid = httpx2.post(
        live_server.url + "/api/auth/v2/token", json={"client_id": cid, "client_secret": secret}
    )
    api = api_v3(surfaces)
    listed = api.getTokenList(clientIdentifier=cid)
    assert listed.totalCount == 2
    for r in (square, candid):
        token = r.json()["access_token"]
        jti = surfaces.introspect(token)["jti"]
        assert jti in {t.accessTokenHash for t in listed.accessTokens}
        api.tokenDelete(jti)
        assert surfaces.introspect(token) == {"active": False}


def test_reissue_an_id_token(live_server: LiveServer, surfaces: Surfaces) -> None:
    app = live_server.create_client(
        "--grant", "password", "--grant", "refresh_token", "--scope", "openid", "--scope", "profile"
    )
    username = "user-" + secrets.token_hex(4)
    done = live_server.cli("users", "create", username, "--password", PASSWORD)
    assert done.returncode == 0, done.stderr
    issued = httpx2.post(
        live_server.token_url,
        data={
            "grant_type": "password",
            "username": username,
            "password": PASSWORD,
            "scope": "openid profile",
        },
        auth=(app["client_id"], app["client_secret"]),
    ).json()
    api = api_v3(surfaces)
    reissued = api.idTokenReissue(
        IDTokenReissueRequest(
            {"accessToken": issued["access_token"], "refreshToken": issued["refresh_token"]}
        )
    )
    assert reissued.action == IDTokenReissueAction.OK
    content = json.loads(reissued.responseContent)
    assert content["id_token"] == reissued.idToken
    assert content["refresh_token"] != issued["refresh_token"]  # rotated
    assert surfaces.introspect(content["access_token"])["active"] is True
    # The spent refresh token is reuse now (outside the grace window it revokes the family).
    with pytest.raises(AuthleteApiException) as caught:
        api.idTokenReissue(IDTokenReissueRequest({"refreshToken": "unknown"}))
    assert caught.value.response.status_code == 404
    assert caught.value.response.json()["action"] == "CALLER_ERROR"


def test_bad_inputs_get_authlete_errors(live_server: LiveServer, surfaces: Surfaces) -> None:
    app = live_server.create_client("--scope", "read")
    cid = app["client_id"]
    api = api_v3(surfaces)

    def error(call: Any, status: int, action: str | None = None) -> str:
        with pytest.raises(AuthleteApiException) as caught:
            call()
        response = caught.value.response
        assert response.status_code == status, response.text
        body = response.json()
        assert body["resultCode"].startswith("KT_")
        assert body["resultMessage"] == caught.value.message
        if action:
            assert body["action"] == action
        return str(body["resultMessage"])

    assert "grantType" in error(lambda: api.tokenCreate(TokenCreateRequest({})), 400)
    assert "grantType" in error(lambda: create(api, cid, grantType=None), 400, "BAD_REQUEST")
    no_client = TokenCreateRequest({"grantType": GrantType.CLIENT_CREDENTIALS})
    assert "clientId" in error(lambda: api.tokenCreate(no_client), 400, "BAD_REQUEST")
    error(lambda: create(api, cid, grantType=GrantType.IMPLICIT), 400, "BAD_REQUEST")
    error(lambda: create(api, cid, grantType=GrantType.PASSWORD), 400, "BAD_REQUEST")
    error(lambda: create(api, "no-such-client"), 404, "NOT_FOUND")
    error(lambda: create(api, cid, scopes=["admin"]), 400, "BAD_REQUEST")
    assert "refreshToken is not supported" in error(
        lambda: create(api, cid, refreshToken="mine"), 400
    )
    error(lambda: create(api, cid, accessTokenDuration=-5), 400)
    error(lambda: api.tokenUpdate(TokenUpdateRequest({"accessToken": "nope"})), 404, "NOT_FOUND")
    error(lambda: api.tokenUpdate(TokenUpdateRequest({})), 400, "BAD_REQUEST")
    error(lambda: api.tokenDelete("nope"), 404, "NOT_FOUND")
    error(lambda: api.tokenRevoke(TokenRevokeRequest({})), 400)
    error(lambda: api.getTokenList(clientIdentifier="no-such-client"), 404)
    error(lambda: api.getTokenList(start=5, end=1), 400)
    error(lambda: api.idTokenReissue(IDTokenReissueRequest({})), 400, "CALLER_ERROR")

    # Who may call: an admin token, or an admin client's Basic credentials.
    nobody = AuthleteApiImpl(
        AuthleteConfiguration(
            {
                "apiVersion": "V3",
                "baseUrl": live_server.url,
                "serviceApiKey": "1",
                "serviceAccessToken": "not-a-token",
            }
        )
    )
    error(lambda: nobody.getTokenList(), 401, "FORBIDDEN")
    plain = AuthleteApiImpl(
        AuthleteConfiguration(
            {
                "baseUrl": live_server.url,
                "serviceApiKey": cid,
                "serviceApiSecret": app["client_secret"],
            }
        )
    )
    error(lambda: plain.getTokenList(), 403, "FORBIDDEN")
    wrong = AuthleteApiImpl(
        AuthleteConfiguration(
            {"baseUrl": live_server.url, "serviceApiKey": cid, "serviceApiSecret": "wrong"}
        )
    )
    error(lambda: wrong.getTokenList(), 401, "FORBIDDEN")

    url = live_server.url + "/api/1/auth/token/create"
    headers = {"Authorization": "Bearer " + surfaces.admin_token()}
    r = httpx2.post(url, content=b"{", headers=headers)
    assert r.status_code == 400
    assert r.json()["action"] == "BAD_REQUEST"
    r = httpx2.post(
        url,
        json={"grantType": "CLIENT_CREDENTIALS", "clientId": cid, "scopes": "read"},
        headers=headers,
    )
    assert r.status_code == 400
    assert "scopes" in r.json()["resultMessage"]
    r = httpx2.get(live_server.url + "/api/1/auth/token/get/list?color=blue", headers=headers)
    assert r.status_code == 400
