"""The ingester in the dev cluster: its system account (made once, kept 0600) and how its process is started."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from artstore_client._files import write_private
from artstore_client.credentials import Credentials
from artstore_client.dev.admin import DATA_DIR_MARKER
from artstore_client.token import TokenRequestFailed, fetch_token

_log = logging.getLogger("artstore.dev")
INGESTER_PACKAGE = "artstore_ingester"
# Every account dev up makes for its ingester is named so; a random tail keeps names unique when a
# replacement is needed (names are unique among live accounts, client ids among all of them).
ACCOUNT_NAME_PREFIX = "dev-ingester-"
ACCOUNTS_PATH = "/api/v1/service-accounts"


class IngesterAccountFailed(Exception):
    """The admin refused to create the ingester's account; the message carries its answer."""


@dataclass(frozen=True)
class IngesterAccount:
    name: str
    client_id: str
    client_secret: str


def _load(path: Path) -> IngesterAccount | None:
    try:
        document = json.loads(path.read_text())
        return IngesterAccount(**{name: str(document[name]) for name in IngesterAccount.__dataclass_fields__})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # Unlike the admin's key, this account can be replaced: a new one costs nothing that was stored.
        _log.warning("cannot use the ingester's account in %s (%s); creating a new one", path, exc)
        return None


async def _works(admin_url: str, account: IngesterAccount) -> bool:
    credentials = Credentials(admin_url, account.client_id, account.client_secret)
    try:
        await asyncio.to_thread(fetch_token, credentials)
    except TokenRequestFailed as exc:
        # The admin has just answered dev up's own requests, so a failure here is its refusal (the
        # account deleted or suspended, or a different database), not an outage.
        _log.warning("the ingester's account %s no longer works (%s); creating a new one", account.name, exc)
        return False
    return True


async def _create(http: httpx.AsyncClient, admin_url: str, admin_token: str) -> IngesterAccount:
    name = ACCOUNT_NAME_PREFIX + secrets.token_hex(4)
    response = await http.post(
        admin_url + ACCOUNTS_PATH,
        json={"name": name, "role": "USER", "is_system": True, "description": "artstore dev up's ingester"},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    if response.status_code != 201:
        raise IngesterAccountFailed(
            f"the admin refused to create the ingester's account: HTTP {response.status_code} "
            f"{response.text[:500]}"
        )
    body = response.json()
    _log.info("created the system account %s for the ingester", name)
    return IngesterAccount(name, str(body["client_id"]), str(body["client_secret"]))


async def ensure_ingester_account(
    http: httpx.AsyncClient, admin_url: str, admin_token: str, path: Path
) -> IngesterAccount:
    """The stored account while it still gets tokens; otherwise a new one, stored for the next start."""
    stored = await asyncio.to_thread(_load, path)
    if stored is not None and await _works(admin_url, stored):
        return stored
    created = await _create(http, admin_url, admin_token)
    content = (json.dumps(asdict(created), indent=2) + "\n").encode()
    await asyncio.to_thread(write_private, path, content)
    return created


def ingester_environment(
    *,
    root: Path,
    port: int,
    admin_url: str,
    account: IngesterAccount,
    redis_url: str,
    redis_namespace: str,
    discovery_fallback_path: Path,
) -> dict[str, str]:
    # dev up alone configures its ingester (ARTSTORE_INGESTER_URL, a client setting, shares the prefix).
    env = {name: value for name, value in os.environ.items() if not name.startswith("ARTSTORE_INGESTER_")}
    env.update(
        {
            DATA_DIR_MARKER: str(root),
            "ARTSTORE_INGESTER_HOST": "127.0.0.1",
            "ARTSTORE_INGESTER_PORT": str(port),
            "ARTSTORE_INGESTER_ADMIN_URL": admin_url,
            "ARTSTORE_INGESTER_JWKS_URL": admin_url + "/.well-known/jwks.json",
            "ARTSTORE_INGESTER_CLIENT_ID": account.client_id,
            "ARTSTORE_INGESTER_CLIENT_SECRET": account.client_secret,
            "ARTSTORE_INGESTER_REDIS_URL": redis_url,
            "ARTSTORE_INGESTER_REDIS_NAMESPACE": redis_namespace,
            "ARTSTORE_INGESTER_DISCOVERY_FALLBACK_PATH": str(discovery_fallback_path),
        }
    )
    return env


def ingester_command() -> list[str]:
    return [sys.executable, "-m", INGESTER_PACKAGE]
