"""Every admin endpoint in the OpenAPI document against every role: allowed, 403 or 401 as DESIGN says."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import pytest

from tests.support.processes import AdminModule

PUBLIC = None
# (method, path) -> the permission DESIGN section 2 requires (a tuple: any one of them); PUBLIC for endpoints
# without a token. An endpoint the app serves that is missing here fails the test: add it when you add one.
EXPECTED: dict[tuple[str, str], str | tuple[str, ...] | None] = {
    ("GET", "/health/live"): PUBLIC,
    ("GET", "/health/ready"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/.well-known/jwks.json"): PUBLIC,
    ("GET", "/.well-known/oauth-authorization-server"): PUBLIC,
    ("POST", "/api/v1/auth/token"): PUBLIC,
    ("GET", "/api/v1/service-accounts"): "accounts:read",
    ("POST", "/api/v1/service-accounts"): "accounts:write",
    ("GET", "/api/v1/service-accounts/{account_id}"): "accounts:read",
    ("PATCH", "/api/v1/service-accounts/{account_id}"): "accounts:write",
    ("DELETE", "/api/v1/service-accounts/{account_id}"): "accounts:write",
    ("POST", "/api/v1/service-accounts/{account_id}/rotate-secret"): "accounts:write",
    ("GET", "/api/v1/keys"): "accounts:read",
    ("POST", "/api/v1/keys/rotate"): "accounts:write",
    ("GET", "/api/v1/storage-elements"): "storage:read",
    ("POST", "/api/v1/storage-elements"): "storage:write",
    ("GET", "/api/v1/storage-elements/{element_id}"): "storage:read",
    ("PATCH", "/api/v1/storage-elements/{element_id}"): "storage:write",
    ("DELETE", "/api/v1/storage-elements/{element_id}"): "storage:write",
    ("POST", "/api/v1/storage-elements/{element_id}/sync"): "storage:write",
    ("POST", "/api/v1/storage-elements/{element_id}/mode"): "storage:write",
    ("POST", "/api/v1/sagas"): "internal",
    ("POST", "/api/v1/sagas/batch"): "internal",
    # Read by the services that run sagas, and by auditors following the trail of a file.
    ("GET", "/api/v1/sagas/{saga_id}"): ("internal", "audit:read"),
    ("POST", "/api/v1/sagas/{saga_id}/complete"): "internal",
    ("POST", "/api/v1/sagas/{saga_id}/fail"): "internal",
    ("POST", "/api/v1/sagas/{saga_id}/heartbeat"): "internal",
    ("GET", "/api/v1/audit"): "audit:read",
    ("GET", "/api/v1/audit/verify"): "audit:read",
    ("POST", "/api/v1/audit/events"): "internal",
}

ROLE_PERMISSIONS = {
    "ADMIN": {"files:read", "files:write", "files:delete", "storage:read", "storage:write",
              "accounts:read", "accounts:write", "audit:read"},
    "USER": {"files:read", "files:write", "files:delete", "storage:read"},
    "AUDITOR": {"audit:read", "files:read", "storage:read"},
    "READONLY": {"files:read", "storage:read"},
}  # fmt: skip


@dataclass(frozen=True)
class Caller:
    name: str
    token: str | None
    permissions: frozenset[str]


def _create(admin: AdminModule, token: str, name: str, role: str, is_system: bool = False) -> str:
    response = httpx.post(
        f"{admin.url}/api/v1/service-accounts",
        json={"name": name, "role": role, "is_system": is_system},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return admin.token(name, response.json()["client_secret"])


@pytest.fixture(scope="module")
def callers(admin: AdminModule) -> list[Caller]:
    bootstrap = admin.token()
    found = [Caller("ADMIN", bootstrap, frozenset(ROLE_PERMISSIONS["ADMIN"]))]
    for role in ("USER", "AUDITOR", "READONLY"):
        token = _create(admin, bootstrap, f"matrix-{role.lower()}", role)
        found.append(Caller(role, token, frozenset(ROLE_PERMISSIONS[role])))
    system = _create(admin, bootstrap, "matrix-system", "USER", is_system=True)
    found.append(Caller("system", system, frozenset(ROLE_PERMISSIONS["USER"] | {"internal"})))
    found.append(Caller("anonymous", None, frozenset()))
    return found


def _served(admin: AdminModule) -> list[tuple[str, str]]:
    document = httpx.get(f"{admin.url}/openapi.json", timeout=10).json()
    return sorted(
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    )


def test_every_served_endpoint_has_an_expectation(admin: AdminModule) -> None:
    missing = [endpoint for endpoint in _served(admin) if endpoint not in EXPECTED]
    assert not missing, f"add these endpoints to EXPECTED in {__name__}: {missing}"


def _call(admin: AdminModule, method: str, path: str, token: str | None) -> httpx.Response:
    concrete = path
    while "{" in concrete:
        start, end = concrete.index("{"), concrete.index("}")
        concrete = concrete[:start] + str(uuid.uuid4()) + concrete[end + 1 :]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"json": {}} if method in {"POST", "PATCH", "PUT"} else {}
    return httpx.request(method, f"{admin.url}{concrete}", headers=headers, timeout=30, **body)  # type: ignore[arg-type]


def test_each_role_gets_exactly_what_its_permissions_allow(admin: AdminModule, callers: list[Caller]) -> None:
    wrong: list[str] = []
    for method, path in _served(admin):
        if (method, path) not in EXPECTED:
            continue  # reported by the test above
        permission = EXPECTED[(method, path)]
        for caller in callers:
            response = _call(admin, method, path, caller.token)
            status = response.status_code
            if permission is PUBLIC:
                challenge = response.headers.get("www-authenticate", "")
                ok = status != 403 and not challenge.startswith("Bearer")
                expected = "served without a bearer token"
            elif caller.token is None:
                ok = status == 401 and response.headers.get("www-authenticate", "").startswith("Bearer")
                expected = "401 with a Bearer challenge"
            elif caller.permissions & set((permission,) if isinstance(permission, str) else permission):
                ok = status not in (401, 403)
                expected = "allowed"
            else:
                ok = status == 403 and "insufficient_scope" in response.headers.get("www-authenticate", "")
                expected = "403 insufficient_scope"
            if not ok:
                wrong.append(f"{caller.name} {method} {path}: {status}, expected {expected}")
    assert not wrong, "\n".join(wrong)
