"""The credentials file `artstore dev up` writes, and how the client finds its admin URL and account."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artstore_client._files import write_private
from artstore_client.settings import ClientSettings

DEFAULT_DATA_DIR = Path(".artstore/dev")
CREDENTIALS_FILE = "credentials.json"


class CredentialsMissing(Exception):
    """Nothing says where the admin is or which account to use."""


@dataclass(frozen=True)
class Credentials:
    admin_url: str
    client_id: str
    client_secret: str


def credentials_path(data_dir: Path) -> Path:
    return data_dir / CREDENTIALS_FILE


def write_credentials(data_dir: Path, document: dict[str, Any]) -> Path:
    path = credentials_path(data_dir)
    write_private(path, (json.dumps(document, indent=2) + "\n").encode())
    return path


def _read_file(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CredentialsMissing(f"cannot read {path}: {exc}") from exc
    return loaded if isinstance(loaded, dict) else {}


def resolve_credentials(settings: ClientSettings, data_dir: Path) -> Credentials:
    """ARTSTORE_ADMIN_URL / ARTSTORE_CLIENT_ID / ARTSTORE_CLIENT_SECRET win over the credentials file."""
    path = credentials_path(data_dir)
    stored = _read_file(path)
    secret = settings.client_secret.get_secret_value() if settings.client_secret else None
    values = {
        "admin_url": settings.admin_url or stored.get("admin_url"),
        "client_id": settings.client_id or stored.get("client_id"),
        "client_secret": secret or stored.get("client_secret"),
    }
    missing = [name for name, value in values.items() if not isinstance(value, str) or not value]
    if missing:
        variables = ", ".join(f"ARTSTORE_{name.upper()}" for name in missing)
        raise CredentialsMissing(
            f"no {', '.join(missing)}: start a cluster with `artstore dev up` (it writes {path}), "
            f"pass its --data-dir, or set {variables}"
        )
    return Credentials(str(values["admin_url"]), str(values["client_id"]), str(values["client_secret"]))
