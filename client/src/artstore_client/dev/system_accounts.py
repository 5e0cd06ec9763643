"""The system accounts dev up makes for its ingester and query module: made once, kept 0600, replaced when
the admin no longer accepts them."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from artstore_client._files import write_private
from artstore_client.credentials import Credentials
from artstore_client.token import TokenRequestFailed, fetch_token

_log = logging.getLogger("artstore.dev")
ACCOUNTS_PATH = "/api/v1/service-accounts"


class SystemAccountFailed(Exception):
    """The admin refused to create a service's account; the message carries its answer."""


@dataclass(frozen=True)
class SystemAccountKind:
    """Which account a service runs as. Every account made for it is named `name_prefix` plus a random
    tail, which keeps names unique when a replacement is needed (names are unique among live accounts,
    client ids among all of them)."""

    service: str  # as messages name its owner: "ingester", "query module"
    role: str
    name_prefix: str


@dataclass(frozen=True)
class SystemAccount:
    name: str
    client_id: str
    client_secret: str


def _load(kind: SystemAccountKind, path: Path) -> SystemAccount | None:
    try:
        document = json.loads(path.read_text())
        return SystemAccount(**{name: str(document[name]) for name in SystemAccount.__dataclass_fields__})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # Unlike the admin's key, this account can be replaced: a new one costs nothing that was stored.
        _log.warning("cannot use the %s's account in %s (%s); creating a new one", kind.service, path, exc)
        return None


async def _works(kind: SystemAccountKind, admin_url: str, account: SystemAccount) -> bool:
    credentials = Credentials(admin_url, account.client_id, account.client_secret)
    try:
        await asyncio.to_thread(fetch_token, credentials)
    except TokenRequestFailed as exc:
        # The admin has just answered dev up's own requests, so a failure here is its refusal (the
        # account deleted or suspended, or a different database), not an outage.
        _log.warning(
            "the %s's account %s no longer works (%s); creating a new one", kind.service, account.name, exc
        )
        return False
    return True


async def _create(
    kind: SystemAccountKind, http: httpx.AsyncClient, admin_url: str, admin_token: str
) -> SystemAccount:
    name = kind.name_prefix + secrets.token_hex(4)
    response = await http.post(
        admin_url + ACCOUNTS_PATH,
        json={
            "name": name,
            "role": kind.role,
            "is_system": True,
            "description": f"artstore dev up's {kind.service}",
        },
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    if response.status_code != 201:
        raise SystemAccountFailed(
            f"the admin refused to create the {kind.service}'s account: HTTP {response.status_code} "
            f"{response.text[:500]}"
        )
    body = response.json()
    _log.info("created the system account %s for the %s", name, kind.service)
    return SystemAccount(name, str(body["client_id"]), str(body["client_secret"]))


async def ensure_system_account(
    http: httpx.AsyncClient, admin_url: str, admin_token: str, kind: SystemAccountKind, path: Path
) -> SystemAccount:
    """The account stored at `path` while it still gets tokens; otherwise a new one, stored for the next
    start."""
    stored = await asyncio.to_thread(_load, kind, path)
    if stored is not None and await _works(kind, admin_url, stored):
        return stored
    created = await _create(kind, http, admin_url, admin_token)
    content = (json.dumps(asdict(created), indent=2) + "\n").encode()
    await asyncio.to_thread(write_private, path, content)
    return created
