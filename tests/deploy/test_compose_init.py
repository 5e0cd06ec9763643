"""deploy/compose_init.py, the compose deployment's one-shot `init` job, run as docker compose runs it (a
process with the client's variables) against a real admin and two real storage elements."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.deploy._checks import INIT_SCRIPT
from tests.support.infra import Infra, own_namespace
from tests.support.processes import AdminModule, StorageElement, admin_module, storage_element

pytestmark = pytest.mark.e2e


@dataclass
class Deployment:
    admin: AdminModule
    elements: list[StorageElement]
    accounts_dir: Path

    def api(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.admin.token()}"}
        return httpx.Client(base_url=f"{self.admin.url}/api/v1", headers=headers, timeout=30)

    def run_init(self, **variables: str | None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARTSTORE_")}
        given = {
            "ARTSTORE_ADMIN_URL": self.admin.url,
            "ARTSTORE_CLIENT_ID": self.admin.client_id,
            "ARTSTORE_CLIENT_SECRET": self.admin.client_secret,
            **variables,
        }
        env.update({name: value for name, value in given.items() if value is not None})
        command = [sys.executable, str(INIT_SCRIPT), "--accounts-dir", str(self.accounts_dir)]
        for element in self.elements:
            command += ["--element", element.url]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)

    def accounts(self) -> list[dict[str, Any]]:
        with self.api() as api:
            items: list[dict[str, Any]] = api.get("/service-accounts").json()["items"]
        return items


@pytest.fixture(scope="module")
def deployment(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    base = tmp_path_factory.mktemp("compose-init")
    namespace = own_namespace("init")
    admin = admin_module(
        database_url=infra.database_url,
        redis_url=infra.redis_url,
        redis_namespace=namespace,
        log_dir=base,
        schema=f"admin_{uuid.uuid4().hex[:10]}",
    )
    started: list[Any] = [admin]
    try:
        admin.start()
        elements = []
        for mode in ("edit", "rw"):
            element_id = f"se-{mode}-{uuid.uuid4().hex[:6]}"
            element = storage_element(
                element_id=element_id,
                data_dir=base / element_id,
                database_url=infra.database_url,
                redis_url=infra.redis_url,
                redis_namespace=namespace,
                jwks_url=admin.jwks_url,
                log_dir=base,
                mode=mode,
            )
            started.append(element)
            elements.append(element.start())
        accounts_dir = base / "accounts"
        accounts_dir.mkdir()
        yield Deployment(admin, elements, accounts_dir)
    finally:
        for process in reversed(started):
            process.stop()


def _service_settings(path: Path, module: str, settings_class: str) -> tuple[str, str]:
    """The client id and secret the service's settings class reads after its container loaded `path` the way
    docker-compose.yml's command does."""
    program = (
        f"from {module} import {settings_class}; s = {settings_class}(); "
        "print(s.client_id); print(s.client_secret.get_secret_value())"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTSTORE_")}
    loaded = subprocess.run(
        ["sh", "-c", f'set -a && . "{path}" && exec "{sys.executable}" -c "{program}"'],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    client_id, secret = loaded.stdout.split()
    return client_id, secret


def _claims(admin: AdminModule, client_id: str, secret: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(admin.token(client_id, secret), options={"verify_signature": False})
    return claims


def test_init_registers_the_elements_and_gives_each_service_a_working_account(deployment: Deployment) -> None:
    first = deployment.run_init()
    assert first.returncode == 0, first.stderr
    with deployment.api() as api:
        listed = {item["id"]: item for item in api.get("/storage-elements").json()["items"]}
    assert {listed[e.element_id]["mode"] for e in deployment.elements} == {"edit", "rw"}
    assert all(listed[e.element_id]["url"] == e.url for e in deployment.elements)

    expected = {
        "ingester": ("artstore_ingester.settings", "IngesterSettings", "artstore-ingester", "USER"),
        "query": ("artstore_query.settings", "QuerySettings", "artstore-query", "READONLY"),
    }
    secrets = {}
    for key, (module, settings_class, client_id, role) in expected.items():
        path = deployment.accounts_dir / f"{key}.env"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        loaded_id, secret = _service_settings(path, module, settings_class)
        assert loaded_id == client_id
        claims = _claims(deployment.admin, client_id, secret)
        assert claims["role"] == role
        assert "internal" in claims["permissions"]
        secrets[key] = secret
    assert first.stderr.count("created the system account") == 2
    assert not any(secret in first.stdout + first.stderr for secret in secrets.values())

    # Every `docker compose up` runs it again: what works is kept as it is.
    files = {path.name: path.read_bytes() for path in deployment.accounts_dir.iterdir()}
    accounts = deployment.accounts()
    again = deployment.run_init()
    assert again.returncode == 0, again.stderr
    assert {path.name: path.read_bytes() for path in deployment.accounts_dir.iterdir()} == files
    assert deployment.accounts() == accounts

    # A lost accounts volume: the same account gets a new secret; the old one keeps working for the overlap,
    # so a query module still running with it is not cut off.
    (deployment.accounts_dir / "query.env").unlink()
    rotated = deployment.run_init()
    assert rotated.returncode == 0, rotated.stderr
    assert "rotated the secret of artstore-query" in rotated.stderr
    client_id, new_secret = _service_settings(
        deployment.accounts_dir / "query.env", "artstore_query.settings", "QuerySettings"
    )
    assert client_id == "artstore-query"
    assert new_secret != secrets["query"]
    assert _claims(deployment.admin, client_id, new_secret)["role"] == "READONLY"
    assert _claims(deployment.admin, client_id, secrets["query"])["role"] == "READONLY"
    assert len(deployment.accounts()) == len(accounts)


def test_init_names_the_missing_variables(deployment: Deployment) -> None:
    result = deployment.run_init(ARTSTORE_CLIENT_SECRET=None, ARTSTORE_ADMIN_URL=None)
    assert result.returncode == 2
    assert "ARTSTORE_ADMIN_URL, ARTSTORE_CLIENT_SECRET not set" in result.stderr


def test_init_with_a_wrong_bootstrap_secret_fails_and_says_so(deployment: Deployment) -> None:
    result = deployment.run_init(ARTSTORE_CLIENT_SECRET="not-the-secret")
    assert result.returncode == 1
    assert f"no token for the bootstrap account {deployment.admin.client_id}" in result.stderr
