"""Service accounts: secrets shown once and stored as scrypt, rotation overlap, refusal states, bootstrap."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis

from tests.admin.conftest import AdminFactory
from tests.support.infra import Infra, query
from tests.support.processes import AdminModule


def _headers(admin: AdminModule) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin.token()}"}


def _create(admin: AdminModule, **fields: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{admin.url}/api/v1/service-accounts", json=fields, headers=_headers(admin), timeout=10
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def _token_status(admin: AdminModule, client_id: str, secret: str) -> httpx.Response:
    return httpx.post(
        admin.token_url, data={"grant_type": "client_credentials"}, auth=(client_id, secret), timeout=10
    )


def _assert_invalid_client(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


def test_the_secret_is_shown_once_and_stored_only_as_scrypt(admin: AdminModule) -> None:
    created = _create(admin, name="reports-bot", role="USER", description="nightly reports")
    secret = created["client_secret"]
    assert len(secret) >= 32
    fetched = httpx.get(
        f"{admin.url}/api/v1/service-accounts/{created['id']}", headers=_headers(admin), timeout=10
    ).json()
    assert "client_secret" not in fetched
    assert fetched["role"] == "USER"
    assert fetched["status"] == "active"
    listed = httpx.get(f"{admin.url}/api/v1/service-accounts", headers=_headers(admin), timeout=10).json()
    assert secret not in json.dumps(listed)
    rows = query(
        admin.database_url,
        f'SELECT secret_hash FROM "{admin.schema}".account_secrets WHERE account_id = $1::uuid',
        created["id"],
    )
    assert len(rows) == 1
    stored = rows[0]["secret_hash"]
    assert stored.startswith("scrypt$")
    assert secret not in stored
    assert _token_status(admin, "reports-bot", secret).status_code == 200


def test_role_decides_the_token_permissions_and_system_accounts_get_internal(admin: AdminModule) -> None:
    auditor = _create(admin, name="auditor-1", role="AUDITOR")
    system = _create(admin, name="ingester-1", role="USER", is_system=True)
    scope = _token_status(admin, "auditor-1", auditor["client_secret"]).json()["scope"].split()
    assert sorted(scope) == ["audit:read", "files:read", "storage:read"]
    scope = _token_status(admin, "ingester-1", system["client_secret"]).json()["scope"].split()
    assert sorted(scope) == ["files:delete", "files:read", "files:write", "internal", "storage:read"]


def test_duplicates_and_bad_input_are_clear_problems(admin: AdminModule) -> None:
    _create(admin, name="dup-name", role="READONLY")
    for body in (
        {"name": "dup-name", "role": "USER"},
        {"name": "other-name", "client_id": "dup-name", "role": "USER"},
    ):
        response = httpx.post(
            f"{admin.url}/api/v1/service-accounts", json=body, headers=_headers(admin), timeout=10
        )
        assert response.status_code == 409, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "already exists" in response.json()["detail"]
    for body in (
        {"name": "x", "role": "USER"},
        {"name": "good-name", "role": "ROOT"},
        {"name": "n-1", "role": "USER", "secret": "s"},
    ):
        response = httpx.post(
            f"{admin.url}/api/v1/service-accounts", json=body, headers=_headers(admin), timeout=10
        )
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "VALIDATION_ERROR"


def test_suspended_deleted_and_expired_accounts_are_refused(admin: AdminModule) -> None:
    url = f"{admin.url}/api/v1/service-accounts"
    suspended = _create(admin, name="to-suspend", role="USER")
    response = httpx.patch(
        f"{url}/{suspended['id']}", json={"status": "suspended"}, headers=_headers(admin), timeout=10
    )
    assert response.status_code == 200
    _assert_invalid_client(_token_status(admin, "to-suspend", suspended["client_secret"]))
    httpx.patch(f"{url}/{suspended['id']}", json={"status": "active"}, headers=_headers(admin), timeout=10)
    assert _token_status(admin, "to-suspend", suspended["client_secret"]).status_code == 200

    deleted = _create(admin, name="to-delete", role="USER")
    assert httpx.delete(f"{url}/{deleted['id']}", headers=_headers(admin), timeout=10).status_code == 204
    _assert_invalid_client(_token_status(admin, "to-delete", deleted["client_secret"]))
    shown = httpx.get(f"{url}/{deleted['id']}", headers=_headers(admin), timeout=10).json()
    assert shown["status"] == "deleted"

    expiring = _create(admin, name="to-expire", role="USER")
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    response = httpx.patch(
        f"{url}/{expiring['id']}", json={"secret_expires_at": past}, headers=_headers(admin), timeout=10
    )
    assert response.status_code == 200, response.text
    _assert_invalid_client(_token_status(admin, "to-expire", expiring["client_secret"]))


def test_account_changes_are_audited_with_the_actor(admin: AdminModule) -> None:
    created = _create(admin, name="audited-one", role="USER")
    httpx.patch(
        f"{admin.url}/api/v1/service-accounts/{created['id']}",
        json={"role": "READONLY"},
        headers=_headers(admin),
        timeout=10,
    )
    rows = query(
        admin.database_url,
        f'SELECT action, actor, details::text AS details FROM "{admin.schema}".audit_log WHERE subject = $1 '
        "ORDER BY id",
        created["id"],
    )
    admin_id = query(
        admin.database_url,
        f'SELECT id::text FROM "{admin.schema}".service_accounts WHERE client_id = $1',
        admin.client_id,
    )[0]["id"]
    assert [(r["action"], r["actor"]) for r in rows] == [
        ("account.created", admin_id),
        ("account.updated", admin_id),
    ]
    assert created["client_secret"] not in "".join(r["details"] for r in rows)


def test_rotated_secret_overlaps_then_the_old_one_stops(make_admin: AdminFactory) -> None:
    admin = make_admin(secret_overlap_seconds=3)
    created = _create(admin, name="rotating", role="USER")
    old = created["client_secret"]
    response = httpx.post(
        f"{admin.url}/api/v1/service-accounts/{created['id']}/rotate-secret",
        headers=_headers(admin),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    new = response.json()["client_secret"]
    assert new != old
    assert _token_status(admin, "rotating", new).status_code == 200
    assert _token_status(admin, "rotating", old).status_code == 200  # the overlap
    deadline = time.monotonic() + 15
    while _token_status(admin, "rotating", old).status_code == 200:
        assert time.monotonic() < deadline, "the old secret still works long after the overlap"
        time.sleep(0.3)
    _assert_invalid_client(_token_status(admin, "rotating", old))
    assert _token_status(admin, "rotating", new).status_code == 200


def test_bootstrap_account_is_created_once_and_unchanged_by_a_restart(make_admin: AdminFactory) -> None:
    first = make_admin()
    sql = f'SELECT a.id, client_id, role, secret_hash FROM "{first.schema}".service_accounts a JOIN "{first.schema}".account_secrets s ON s.account_id = a.id'
    before = [dict(r) for r in query(first.database_url, sql)]
    assert len(before) == 1
    assert before[0]["role"] == "ADMIN"
    first.stop()
    # A restart with another configured secret changes nothing: the stored account stands.
    second = make_admin(schema=first.schema, client_secret="a-different-secret-now")
    assert [dict(r) for r in query(first.database_url, sql)] == before
    assert second.token(client_secret=first.client_secret)
    _assert_invalid_client(_token_status(second, second.client_id, "a-different-secret-now"))


def test_an_admin_without_bootstrap_account_or_secret_refuses_to_start(make_admin: AdminFactory) -> None:
    admin = make_admin(start=False, bootstrap_client_secret="")
    with pytest.raises(RuntimeError, match="BOOTSTRAP_CLIENT_SECRET"):
        admin.start(timeout=60)


def test_per_account_rate_limits_are_published_to_redis(admin: AdminModule, infra: Infra) -> None:
    client = redis.Redis.from_url(infra.redis_url, decode_responses=True)
    key = f"{infra.redis_namespace}:ratelimit:accounts"
    created = _create(admin, name="limited", role="USER", rate_limit_per_minute=7, rate_limit_burst=9)
    assert json.loads(client.hget(key, created["id"]) or "null") == {"per_minute": 7, "burst": 9}
    url = f"{admin.url}/api/v1/service-accounts/{created['id']}"
    httpx.patch(url, json={"rate_limit_per_minute": 20}, headers=_headers(admin), timeout=10)
    assert json.loads(client.hget(key, created["id"]) or "null") == {"per_minute": 20, "burst": 9}
    httpx.patch(
        url,
        json={"rate_limit_per_minute": None, "rate_limit_burst": None},
        headers=_headers(admin),
        timeout=10,
    )
    assert client.hget(key, created["id"]) is None
    client.close()
