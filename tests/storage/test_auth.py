"""Tokens the element must refuse (DESIGN section 2): always 401/403 with a challenge, never 500."""

import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.files import put
from tests.support.issuer import new_key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(issuer):
    now = int(time.time())
    return {
        "iss": "artstore-admin", "sub": "mallory", "client_id": "mallory", "role": "ADMIN",
        "permissions": ["files:read", "internal"], "scope": "files:read internal",
        "aud": ["storage"], "iat": now, "nbf": now, "exp": now + 600, "jti": uuid.uuid4().hex,
    }  # fmt: skip


def _unsigned(issuer):
    header = _b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": issuer.kid}).encode())
    return f"{header}.{_b64(json.dumps(_claims(issuer)).encode())}."


def _hs256_with_public_key(issuer):
    public_pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": issuer.kid}).encode())
    signing_input = f"{header}.{_b64(json.dumps(_claims(issuer)).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


FORGERIES = {
    "expired": lambda i: i.token(
        iat=int(time.time()) - 7200, nbf=int(time.time()) - 7200, exp=int(time.time()) - 3600
    ),
    "not yet valid": lambda i: i.token(nbf=int(time.time()) + 3600),
    "wrong issuer": lambda i: i.token(iss="someone-else"),
    "wrong audience": lambda i: i.token(aud=["query"]),
    "alg none": _unsigned,
    "HS256 signed with the public key": _hs256_with_public_key,
    "unknown kid": lambda i: i.token(header={"kid": "not-a-published-key"}),
    "signed by another key": lambda i: i.token(key=new_key()),
    "not an access token": lambda i: i.token(header={"typ": "JWT"}),
    "garbage": lambda i: "not.a.jwt",
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_invalid_tokens_are_401_with_bearer_challenge(shared_se, client_for, issuer, forgery):
    client = client_for(shared_se, FORGERIES[forgery](issuer))
    for response in (client.get("/info"), put(client, b"must not be stored")):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
        assert response.json()["code"] == "INVALID_TOKEN"


def test_missing_token_is_401(shared_se, client_for):
    client = client_for(shared_se, None)
    response = client.get("/info")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert client.post("/mode", json={"target_mode": "ro"}).status_code == 401
    assert client.get(f"/files/{uuid.uuid4()}").status_code == 401


def test_non_bearer_scheme_is_401(shared_se, client_for):
    client = client_for(shared_se, None)
    assert client.get("/info", headers={"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 401


@pytest.mark.parametrize(
    ("permissions", "call"),
    [
        (["files:read", "storage:read"], lambda c: put(c, b"x")),  # READONLY cannot write
        (["files:read", "storage:read", "files:write"], lambda c: put(c, b"x")),  # writes need `internal`
        (["files:read"], lambda c: c.get("/info")),
        (["storage:read"], lambda c: c.get(f"/files/{uuid.uuid4()}")),
        (["files:read", "storage:read"], lambda c: c.post("/mode", json={"target_mode": "ro"})),
        (["files:read", "storage:read"], lambda c: c.post("/maintenance/reconcile", json={})),
        (["files:read", "storage:read"], lambda c: c.post("/transactions/saga-1/compensate")),
    ],
)
def test_missing_permission_is_403_insufficient_scope(shared_se, client_for, issuer, permissions, call):
    response = call(client_for(shared_se, issuer.token(permissions=permissions, role="READONLY")))
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "INSUFFICIENT_SCOPE"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_unknown_role_grants_nothing_beyond_its_permissions(shared_se, client_for, issuer):
    client = client_for(shared_se, issuer.token(role="GOD", permissions=[]))
    assert client.get("/info").status_code == 403


def test_element_without_reachable_keys_refuses_requests(make_se, client_for, issuer):
    se = make_se("rw", jwks_url="http://127.0.0.1:9/.well-known/jwks.json")
    client = client_for(se, issuer.token())
    for response in (client.get("/info"), put(client, b"must not be stored")):
        assert response.status_code == 503
        assert response.json()["code"] == "AUTH_UNAVAILABLE"
    assert not any((se.data_dir / "files").rglob("*.bin"))
    ready = client.get(se.url + "/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["auth"]["ok"] is False


def test_element_without_auth_configuration_refuses_requests(make_se, client_for, issuer):
    se = make_se("rw", jwks_url="")
    response = client_for(se, issuer.token()).get("/info")
    assert response.status_code == 503
    assert "not configured" in response.json()["detail"]


def test_a_token_accepted_before_is_refused_once_it_expires(make_se, client_for, issuer):
    se = make_se("rw", jwt_leeway_seconds=0)
    client = client_for(se, issuer.token(lifetime=2))
    assert client.get("/info").status_code == 200
    time.sleep(3)  # the verified-token cache must not outlive the token
    expired = client.get("/info")
    assert expired.status_code == 401
    assert "expired" in expired.json()["detail"]
