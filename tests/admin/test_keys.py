"""Signing keys: rotation and its grace, several admins rotating at once, encryption at rest."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from datetime import datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from artstore_admin.audit.log import AuditLog
from artstore_admin.identity.keycrypto import KeyCipher
from artstore_admin.identity.keystore import KeyStore, Rotation
from artstore_common.database import create_engine
from tests.admin.conftest import AdminFactory
from tests.support.infra import query
from tests.support.processes import TEST_KEY_ENCRYPTION_KEY, AdminModule

# The PKCS#8 prefix of an unencrypted RSA private key: version 0, then the rsaEncryption algorithm id.
PKCS8_RSA_PREFIX = bytes.fromhex("020100300d06092a864886f70d0101010500")


def _kid(token: str) -> str:
    header = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


def _jwks_kids(admin: AdminModule) -> set[str]:
    return {key["kid"] for key in httpx.get(admin.jwks_url, timeout=10).json()["keys"]}


def _keys(admin: AdminModule, token: str) -> httpx.Response:
    return httpx.get(f"{admin.url}/api/v1/keys", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _rotate(admin: AdminModule, token: str) -> dict[str, Any]:
    response = httpx.post(
        f"{admin.url}/api/v1/keys/rotate", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_an_old_key_token_works_during_the_grace_and_is_refused_after(make_admin: AdminFactory) -> None:
    admin = make_admin(key_grace_seconds=3, key_check_seconds=1)
    old_token = admin.token()
    old_kid = _kid(old_token)
    rotation = _rotate(admin, old_token)
    assert rotation["rotated"] is True
    assert rotation["retired_kid"] == old_kid
    new_kid = rotation["kid"]

    # In grace: both keys published, the old token still accepted.
    assert _jwks_kids(admin) == {old_kid, new_kid}
    assert _keys(admin, old_token).status_code == 200
    new_token = admin.token()
    assert _kid(new_token) == new_kid
    listed = {key["kid"]: key for key in _keys(admin, new_token).json()["items"]}
    assert listed[old_kid]["status"] == "retired"
    assert listed[new_kid]["status"] == "active"
    assert not any("private" in name for item in listed.values() for name in item)
    publish_until = datetime.fromisoformat(listed[old_kid]["publish_until"]).timestamp()

    deadline = time.monotonic() + 20
    while _keys(admin, old_token).status_code == 200:
        assert time.monotonic() < deadline, "the old key's token is still accepted long after its grace"
        time.sleep(0.2)
    refused = _keys(admin, old_token)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert time.time() >= publish_until - 0.5, "refused before the grace period ended"
    # After the grace: exactly the active key is published, and new tokens keep working.
    assert _jwks_kids(admin) == {new_kid}
    assert _keys(admin, new_token).status_code == 200


def test_key_rotation_is_audited_with_the_actor(make_admin: AdminFactory) -> None:
    admin = make_admin()
    token = admin.token()
    rotation = _rotate(admin, token)
    sub = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["sub"]
    rows = query(
        admin.database_url,
        f'SELECT actor, subject FROM "{admin.schema}".audit_log WHERE action = $1',
        "key.rotated",
    )
    assert [(r["actor"], r["subject"]) for r in rows] == [(sub, rotation["kid"])]


def test_two_admins_asked_to_rotate_at_once_never_fork_the_key_chain(make_admin: AdminFactory) -> None:
    first = make_admin(key_check_seconds=1)
    second = make_admin(schema=first.schema, client_secret=first.client_secret, key_check_seconds=1)
    token = first.token()
    before = query(first.database_url, f'SELECT kid FROM "{first.schema}".signing_keys')
    assert len(before) == 1

    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(2)

    def rotate(admin: AdminModule) -> None:
        barrier.wait()
        results.append(_rotate(admin, token))

    threads = [threading.Thread(target=rotate, args=(admin,)) for admin in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    # Whether the two requests overlapped at the servers depends on scheduling: when they did, one rotation
    # answers for both; when one came after the other had finished, it rotated the new key in turn. Either
    # way the keys form one chain: no key has two successors and exactly one is active.
    rows = query(first.database_url, f'SELECT kid, status FROM "{first.schema}".signing_keys')
    active = [r["kid"] for r in rows if r["status"] == "active"]
    assert len(active) == 1
    rotated = [r for r in results if r["rotated"]]
    assert len(rows) == 1 + len(rotated) >= 2
    retired = [r["retired_kid"] for r in rotated]
    assert len(set(retired)) == len(retired), "two rotations retired the same key: the chain forked"
    assert retired[0] == before[0]["kid"] or (len(retired) == 2 and before[0]["kid"] in retired)
    assert active[0] in {r["kid"] for r in results}

    # Both admins sign with the new key and accept each other's tokens.
    for admin in (first, second):
        deadline = time.monotonic() + 10
        while _kid(admin.token()) != active[0]:
            assert time.monotonic() < deadline, "an admin still signs with a retired key"
            time.sleep(0.2)
    assert _keys(second, first.token()).status_code == 200
    assert _keys(first, second.token()).status_code == 200


def test_rotations_of_the_same_key_at_the_same_moment_make_one_new_key(make_admin: AdminFactory) -> None:
    """Two key stores (as in two admins) both replacing the key they saw: the lock lets exactly one win."""
    admin = make_admin()
    schema = admin.schema

    async def race() -> list[Rotation]:
        engines = [create_engine(admin.database_url, schema=schema, pool_size=2) for _ in range(2)]
        try:
            stores = [
                KeyStore(
                    engine,
                    KeyCipher(TEST_KEY_ENCRYPTION_KEY),
                    AuditLog(engine, b"test-audit-key"),
                    rotation_seconds=86_400,
                    grace_seconds=3_600,
                )
                for engine in engines
            ]
            seen = await stores[0].active_kid()
            return list(
                await asyncio.gather(
                    *(store.rotate(expected_kid=seen, actor="test", reason="race") for store in stores)
                )
            )
        finally:
            for engine in engines:
                await engine.dispose()

    rotations = asyncio.run(race())

    assert sorted(r.rotated for r in rotations) == [False, True]
    assert rotations[0].active_kid == rotations[1].active_kid
    rows = query(admin.database_url, f'SELECT kid, status FROM "{schema}".signing_keys')
    assert len(rows) == 2
    assert [r["kid"] for r in rows if r["status"] == "active"] == [rotations[0].active_kid]


def test_an_admin_that_did_not_rotate_signs_with_the_new_key(make_admin: AdminFactory) -> None:
    first = make_admin(key_check_seconds=1)
    second = make_admin(schema=first.schema, client_secret=first.client_secret, key_check_seconds=1)
    new_kid = _rotate(first, first.token())["kid"]
    # A token signed with the new key is accepted by the other admin at once (unknown kid: reload).
    assert _keys(second, first.token()).status_code == 200
    deadline = time.monotonic() + 10
    while _kid(second.token()) != new_kid:
        assert time.monotonic() < deadline, "the other admin still signs with the retired key"
        time.sleep(0.2)


def _text_values(admin: AdminModule) -> list[tuple[str, str, Any]]:
    columns = query(
        admin.database_url,
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = $1 AND data_type IN ('text', 'bytea', 'jsonb', 'character varying', 'json')",
        admin.schema,
    )
    values: list[tuple[str, str, Any]] = []
    for column in columns:
        rows = query(
            admin.database_url,
            f'SELECT "{column["column_name"]}" AS v FROM "{admin.schema}"."{column["table_name"]}"',
        )
        values += [(column["table_name"], column["column_name"], r["v"]) for r in rows if r["v"] is not None]
    return values


def _has_private_jwk_member(value: Any) -> bool:
    if isinstance(value, dict):
        return "d" in value or any(_has_private_jwk_member(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_private_jwk_member(v) for v in value)
    return False


def test_no_column_holds_an_unencrypted_private_key(make_admin: AdminFactory) -> None:
    admin = make_admin()
    _rotate(admin, admin.token())  # a retired key too
    values = _text_values(admin)
    assert any(table == "signing_keys" for table, _, _ in values)
    for table, column, value in values:
        where = f"{table}.{column}"
        if isinstance(value, bytes):
            assert PKCS8_RSA_PREFIX not in value, where
            assert b"PRIVATE KEY" not in value, where
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            assert "PRIVATE KEY" not in text, where
            assert "MIIE" not in text, where  # base64 of a DER key
            parsed = json.loads(value) if column in ("public_jwk",) and isinstance(value, str) else value
            assert not _has_private_jwk_member(parsed), where

    # The encrypted blob is the real key: the configured key decrypts it to the published public key.
    jwks = {key["kid"]: key for key in httpx.get(admin.jwks_url, timeout=10).json()["keys"]}
    rows = query(admin.database_url, f'SELECT kid, private_key_encrypted FROM "{admin.schema}".signing_keys')
    aead = AESGCM(base64.b64decode(TEST_KEY_ENCRYPTION_KEY))
    for row in rows:
        blob = bytes(row["private_key_encrypted"])
        key = serialization.load_der_private_key(
            aead.decrypt(blob[:12], blob[12:], row["kid"].encode()), None
        )
        assert isinstance(key, rsa.RSAPrivateKey)
        assert key.key_size >= 2048
        n = key.public_key().public_numbers().n
        expected = base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).decode().rstrip("=")
        assert jwks[row["kid"]]["n"] == expected
