"""The one-shot `init` job of docker-compose.yml, run on every `docker compose up` once the admin and the
storage elements are healthy. It acts as the bootstrap ADMIN account, found through the client's settings
(ARTSTORE_ADMIN_URL, ARTSTORE_CLIENT_ID, ARTSTORE_CLIENT_SECRET), and:

1. registers every storage element URL given with the admin; an element the admin knows already is moved
   to that URL when it differs and synced;
2. makes sure the ingester and the query module each have a system account whose secret works, and writes
   it to `<accounts-dir>/<service>.env` as the service's own settings (ARTSTORE_INGESTER_CLIENT_ID and
   ARTSTORE_INGESTER_CLIENT_SECRET, ARTSTORE_QUERY_...), which those containers load at start.

The admin makes every secret itself and shows it once, so secrets cannot come from configuration: a stored
secret that is missing or no longer accepted is replaced by rotating it (the old one keeps working for the
admin's overlap), and the account keeps its client id.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from artstore_client.credentials import Credentials
from artstore_client.settings import ClientSettings
from artstore_client.token import TokenRequestFailed, fetch_token

ELEMENTS_PATH = "/storage-elements"
ACCOUNTS_PATH = "/service-accounts"


class InitFailed(Exception):
    """The admin refused a step; the message says which and what to do."""


@dataclass(frozen=True)
class SystemService:
    """A service that acts towards the cluster as a system account of its own."""

    key: str  # the file's name and the option's: "ingester", "query"
    label: str  # as messages name it
    role: str
    env_prefix: str  # its settings class's
    default_client_id: str

    def path(self, accounts_dir: Path) -> Path:
        return accounts_dir / f"{self.key}.env"


# The roles `artstore dev up` gives them: the ingester writes and deletes for its callers, the query module
# only reads; `is_system` adds `internal` to both (the elements' write and saga endpoints, no rate limit).
SERVICES = (
    SystemService("ingester", "ingester", "USER", "ARTSTORE_INGESTER_", "artstore-ingester"),
    SystemService("query", "query module", "READONLY", "ARTSTORE_QUERY_", "artstore-query"),
)


def _say(message: str) -> None:
    print(f"init: {message}", file=sys.stderr, flush=True)


def _token(credentials: Credentials, wait_seconds: float) -> str:
    """The bootstrap account's token; an admin that cannot be reached yet is retried until `wait_seconds`."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return fetch_token(credentials)
        except TokenRequestFailed as exc:
            unreachable = isinstance(exc.__cause__, httpx.HTTPError)
            if not unreachable or time.monotonic() >= deadline:
                raise InitFailed(
                    f"no token for the bootstrap account {credentials.client_id}: {exc}"
                ) from None
        time.sleep(2)


def _refusal(response: httpx.Response) -> str:
    return f"HTTP {response.status_code} {response.text[:500]}"


def register_element(api: httpx.Client, url: str) -> None:
    response = api.post(ELEMENTS_PATH, json={"url": url})
    if response.status_code in (200, 201):
        _say(f"registered the storage element {response.json().get('id')} at {url}")
        return
    element_id = response.json().get("id") if response.status_code == 409 else None
    if not isinstance(element_id, str):
        raise InitFailed(f"the admin refused to register the storage element at {url}: {_refusal(response)}")
    known = api.get(f"{ELEMENTS_PATH}/{element_id}")
    if known.status_code == 200 and str(known.json().get("url", "")).rstrip("/") != url.rstrip("/"):
        moved = api.patch(f"{ELEMENTS_PATH}/{element_id}", json={"url": url})
        if moved.status_code != 200:
            raise InitFailed(f"the admin could not move {element_id} to {url}: {_refusal(moved)}")
        _say(f"the storage element {element_id} moved to {url}")
    synced = api.post(f"{ELEMENTS_PATH}/{element_id}/sync")
    if synced.status_code != 200:
        raise InitFailed(f"the admin could not sync {element_id}: {_refusal(synced)}")
    _say(f"the storage element {element_id} at {url} is registered ({synced.json().get('status')})")


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep:
                words = shlex.split(value)
                values[name.strip()] = words[0] if words else ""
    return values


def _write_env_file(path: Path, values: dict[str, str]) -> None:
    """Written whole and private (0600), then renamed into place: a reader never sees half a file."""
    content = "".join(f"{name}={shlex.quote(value)}\n" for name, value in values.items())
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def _accepted(admin_url: str, client_id: str, secret: str) -> bool:
    try:
        fetch_token(Credentials(admin_url, client_id, secret))
    except TokenRequestFailed as exc:
        _say(f"the stored secret of {client_id} is not accepted ({exc}); it gets a new one")
        return False
    return True


def _find_account(api: httpx.Client, client_id: str) -> dict[str, Any] | None:
    response = api.get(ACCOUNTS_PATH)
    if response.status_code != 200:
        raise InitFailed(f"the admin did not list its service accounts: {_refusal(response)}")
    for account in response.json()["items"]:
        if account["client_id"] == client_id:
            return dict(account)
    return None


def _new_secret(api: httpx.Client, service: SystemService, client_id: str) -> str:
    """Creates the account, or rotates the secret of the one that exists."""
    account = _find_account(api, client_id)
    if account is None:
        response = api.post(
            ACCOUNTS_PATH,
            json={
                "name": client_id,
                "client_id": client_id,
                "role": service.role,
                "is_system": True,
                "description": f"the {service.label}'s system account (docker compose)",
            },
        )
        if response.status_code != 201:
            raise InitFailed(
                f"the admin refused to create the {service.label}'s account {client_id}: {_refusal(response)}"
            )
        _say(f"created the system account {client_id} for the {service.label}")
        return str(response.json()["client_secret"])
    if account["status"] != "active" or not account["is_system"] or account["role"] != service.role:
        raise InitFailed(
            f"the account {client_id} exists but is not an active {service.role} system account "
            f"(status {account['status']}, role {account['role']}, is_system {account['is_system']}); "
            f"fix it with the admin API or choose another --{service.key}-client-id"
        )
    response = api.post(f"{ACCOUNTS_PATH}/{account['id']}/rotate-secret")
    if response.status_code != 200:
        raise InitFailed(f"the admin could not rotate the secret of {client_id}: {_refusal(response)}")
    _say(f"rotated the secret of {client_id}, the {service.label}'s system account")
    return str(response.json()["client_secret"])


def ensure_account(
    api: httpx.Client, admin_url: str, service: SystemService, client_id: str, accounts_dir: Path
) -> None:
    path = service.path(accounts_dir)
    id_name, secret_name = service.env_prefix + "CLIENT_ID", service.env_prefix + "CLIENT_SECRET"
    stored = _read_env_file(path)
    secret = stored.get(secret_name) if stored.get(id_name) == client_id else None
    if secret and _accepted(admin_url, client_id, secret):
        _say(f"the {service.label} keeps its system account {client_id}")
        return
    _write_env_file(path, {id_name: client_id, secret_name: _new_secret(api, service, client_id)})


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="compose_init.py",
        description="Register the storage elements and provide the ingester's and query module's system "
        "accounts (as the bootstrap account: ARTSTORE_ADMIN_URL, ARTSTORE_CLIENT_ID, ARTSTORE_CLIENT_SECRET).",
    )
    parser.add_argument(
        "--element",
        action="append",
        required=True,
        metavar="URL",
        help="a storage element's URL, as the "
        "admin, the ingester and the query module reach it (repeat for each element)",
    )
    parser.add_argument(
        "--accounts-dir", type=Path, required=True, help="where <service>.env files are written (0600)"
    )
    for service in SERVICES:
        parser.add_argument(
            f"--{service.key}-client-id",
            default=service.default_client_id,
            help=f"the client id of the {service.label}'s system account (default: %(default)s)",
        )
    parser.add_argument(
        "--wait-seconds", type=float, default=60.0, help="how long an unreachable admin is retried"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _arguments(argv)
    try:
        settings = ClientSettings()
    except ValidationError as exc:
        _say(f"invalid settings (ARTSTORE_*):\n{exc}")
        return 2
    missing = [
        f"ARTSTORE_{name.upper()}"
        for name in ("admin_url", "client_id", "client_secret")
        if not getattr(settings, name)
    ]
    if missing:
        _say(f"{', '.join(missing)} not set: the admin's URL and the bootstrap account's credentials")
        return 2
    assert settings.admin_url is not None
    assert settings.client_id is not None
    assert settings.client_secret is not None
    admin_url = settings.admin_url.rstrip("/")
    bootstrap = Credentials(admin_url, settings.client_id, settings.client_secret.get_secret_value())
    try:
        token = _token(bootstrap, arguments.wait_seconds)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=admin_url + "/api/v1", headers=headers, timeout=30.0) as api:
            for url in arguments.element:
                register_element(api, url)
            for service in SERVICES:
                client_id = getattr(arguments, f"{service.key}_client_id")
                ensure_account(api, admin_url, service, client_id, arguments.accounts_dir)
    except (InitFailed, httpx.HTTPError, ValueError) as exc:  # ValueError: an answer that is not JSON
        _say(str(exc) or type(exc).__name__)
        return 1
    _say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
