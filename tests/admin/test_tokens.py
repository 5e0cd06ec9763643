"""The token endpoint against real OAuth client libraries, its RFC 6749 errors, and the token's shape."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from jwcrypto import jwk, jwt
from oauthlib.oauth2 import BackendApplicationClient
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from tests.support.processes import AdminModule

ADMIN_PERMISSIONS = [
    "files:read", "files:write", "files:delete", "storage:read", "storage:write",
    "accounts:read", "accounts:write", "audit:read",
]  # fmt: skip
CLAIMS = {"iss", "sub", "client_id", "role", "scope", "permissions", "aud", "iat", "nbf", "exp", "jti"}


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _post(admin: AdminModule, **kwargs: Any) -> httpx.Response:
    return httpx.post(admin.token_url, timeout=10, **kwargs)


def _assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Basic")


def test_requests_oauthlib_backend_client_gets_a_token_with_http_basic(
    admin: AdminModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    # oauthlib's documented switch for a test server on plain http; the library itself is unchanged.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    session = OAuth2Session(client=BackendApplicationClient(client_id=admin.client_id))
    token = session.fetch_token(
        token_url=admin.token_url, auth=HTTPBasicAuth(admin.client_id, admin.client_secret), timeout=10
    )
    assert token["token_type"] == "Bearer"
    assert token["scope"] == ADMIN_PERMISSIONS or token["scope"] == " ".join(ADMIN_PERMISSIONS)
    listed = httpx.get(
        f"{admin.url}/api/v1/service-accounts",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    )
    assert listed.status_code == 200


def test_authlib_client_secret_post_gets_a_token(admin: AdminModule) -> None:
    with AuthlibSession(
        admin.client_id, admin.client_secret, token_endpoint_auth_method="client_secret_post"
    ) as session:
        token = session.fetch_token(admin.token_url, grant_type="client_credentials", timeout=10)
    assert token["token_type"] == "Bearer"
    assert _claims(token["access_token"])["client_id"] == admin.client_id


def test_json_body_implies_the_grant_and_the_response_is_not_cacheable(admin: AdminModule) -> None:
    response = _post(admin, json={"client_id": admin.client_id, "client_secret": admin.client_secret})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 1800
    assert body["scope"].split() == ADMIN_PERMISSIONS
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


def test_an_independent_jose_library_verifies_the_token_from_the_jwks_alone(admin: AdminModule) -> None:
    token = admin.token()
    keys = jwk.JWKSet.from_json(httpx.get(admin.jwks_url, timeout=10).text)
    published = [key.export_public(as_dict=True) for key in keys["keys"]]
    assert not any(key.has_private for key in keys["keys"])
    verified = jwt.JWT(jwt=token, key=keys, algs=["RS256"], expected_type="JWS")
    header = json.loads(verified.header)
    claims = json.loads(verified.claims)
    assert set(header) == {"alg", "kid", "typ"}
    assert header["alg"] == "RS256"
    assert header["typ"] == "at+jwt"
    assert header["kid"] in {key["kid"] for key in published}
    assert set(claims) == CLAIMS
    assert claims["iss"] == "artstore-admin"
    assert claims["aud"] == ["admin", "ingester", "query", "storage"]
    assert claims["role"] == "ADMIN"
    assert claims["permissions"] == ADMIN_PERMISSIONS
    assert claims["scope"] == " ".join(ADMIN_PERMISSIONS)
    assert claims["exp"] - claims["iat"] == 1800
    assert claims["nbf"] == claims["iat"]


def test_jwks_publishes_only_public_members(admin: AdminModule) -> None:
    document = httpx.get(admin.jwks_url, timeout=10).json()
    assert document["keys"]
    for key in document["keys"]:
        assert set(key) == {"kty", "n", "e", "kid", "use", "alg"}
        assert (key["kty"], key["use"], key["alg"]) == ("RSA", "sig", "RS256")


def test_authorization_server_metadata(admin: AdminModule) -> None:
    metadata = httpx.get(f"{admin.url}/.well-known/oauth-authorization-server", timeout=10).json()
    assert metadata["issuer"] == "artstore-admin"
    assert metadata["token_endpoint"] == admin.token_url
    assert metadata["jwks_uri"] == admin.jwks_url
    assert metadata["grant_types_supported"] == ["client_credentials"]
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    # A client that discovers the endpoint from the metadata gets a token there.
    response = httpx.post(
        metadata["token_endpoint"],
        data={"grant_type": "client_credentials"},
        auth=(admin.client_id, admin.client_secret),
        timeout=10,
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        ({"data": {"grant_type": "client_credentials"}, "auth": ("artstore-admin", "wrong")}, 401, "invalid_client"),
        ({"data": {"grant_type": "client_credentials"}, "auth": ("nobody-here", "wrong")}, 401, "invalid_client"),
        ({"data": {"grant_type": "client_credentials"}}, 401, "invalid_client"),
        ({"json": {"client_id": "artstore-admin", "client_secret": "wrong"}}, 401, "invalid_client"),
        ({"data": {"grant_type": "password", "username": "u", "password": "p"}}, 400, "unsupported_grant_type"),
        ({"data": {"client_id": "artstore-admin", "client_secret": "x"}}, 400, "invalid_request"),
        ({"content": b"grant_type=client_credentials", "headers": {"content-type": "text/plain"}}, 400, "invalid_request"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "invalid_request"),
    ],
    ids=["wrong-secret", "unknown-client", "no-credentials", "json-wrong-secret", "password-grant",
         "no-grant-type", "wrong-media-type", "broken-json"],
)  # fmt: skip
def test_token_errors_follow_rfc_6749(
    admin: AdminModule, kwargs: dict[str, Any], status: int, error: str
) -> None:
    _assert_oauth_error(_post(admin, **kwargs), status, error)


def test_scope_beyond_the_role_is_refused_and_a_subset_narrows_the_token(admin: AdminModule) -> None:
    auth = (admin.client_id, admin.client_secret)
    beyond = _post(
        admin, data={"grant_type": "client_credentials", "scope": "files:read internal"}, auth=auth
    )
    _assert_oauth_error(beyond, 400, "invalid_scope")
    narrow = _post(
        admin, data={"grant_type": "client_credentials", "scope": "audit:read files:read"}, auth=auth
    )
    assert narrow.status_code == 200
    claims = _claims(narrow.json()["access_token"])
    assert claims["permissions"] == ["files:read", "audit:read"]
    assert narrow.json()["scope"] == "files:read audit:read"
    # The narrowed token really lacks what it did not ask for.
    refused = httpx.get(
        f"{admin.url}/api/v1/service-accounts",
        headers={"Authorization": f"Bearer {narrow.json()['access_token']}"},
        timeout=10,
    )
    assert refused.status_code == 403


def test_get_on_the_token_endpoint_is_405_and_not_cacheable(admin: AdminModule) -> None:
    response = httpx.get(admin.token_url, timeout=10)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["cache-control"] == "no-store"


def test_issued_and_refused_tokens_are_audited_without_the_secret(admin: AdminModule) -> None:
    from tests.support.infra import query

    secret = "not-the-right-secret-4242"
    _post(admin, data={"grant_type": "client_credentials"}, auth=("someone-unknown", secret))
    admin.token()
    rows = query(
        admin.database_url,
        f'SELECT action, outcome, subject, details::text AS details FROM "{admin.schema}".audit_log '
        "WHERE action LIKE 'token.%' ORDER BY id",
    )
    refused = [r for r in rows if r["action"] == "token.refused" and r["subject"] == "someone-unknown"]
    assert refused
    assert refused[-1]["outcome"] == "failure"
    assert any(r["action"] == "token.issued" and r["subject"] == admin.client_id for r in rows)
    assert all(secret not in r["details"] and admin.client_secret not in r["details"] for r in rows)
