"""The admin's readiness names each dependency it needs."""

from __future__ import annotations

import httpx

from tests.support.processes import AdminModule


def test_ready_reports_postgresql_redis_and_signing_keys(admin: AdminModule) -> None:
    response = httpx.get(f"{admin.url}/health/ready", timeout=10)

    assert response.status_code == 200
    checks = response.json()["checks"]
    assert {name: (check["ok"], check["critical"]) for name, check in checks.items()} == {
        "postgresql": (True, True),
        "redis": (True, False),
        "signing_keys": (True, True),
    }
    assert httpx.get(f"{admin.url}/health/live", timeout=10).status_code == 200
