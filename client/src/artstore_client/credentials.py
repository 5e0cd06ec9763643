"""The credentials file `artstore dev up` writes, and how the client finds the cluster and its account."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artstore_client._files import write_private
from artstore_client.errors import CredentialsMissing
from artstore_client.settings import ClientSettings

__all__ = [
    "CREDENTIALS_FILE",
    "DEFAULT_DATA_DIR",
    "Credentials",
    "CredentialsMissing",
    "credentials_path",
    "resolve_credentials",
    "write_credentials",
]

DEFAULT_DATA_DIR = Path(".artstore/dev")
CREDENTIALS_FILE = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    admin_url: str
    client_id: str
    client_secret: str
    ingester_url: str | None = None
    query_url: str | None = None


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


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def resolve_credentials(settings: ClientSettings, data_dir: Path | None = None) -> Credentials:
    """ARTSTORE_ADMIN_URL / _INGESTER_URL / _QUERY_URL / _CLIENT_ID / _CLIENT_SECRET win over the credentials
    file in `data_dir` (else ARTSTORE_DATA_DIR, else .artstore/dev); the service URLs may stay unset."""
    directory = data_dir if data_dir is not None else settings.data_dir or DEFAULT_DATA_DIR
    path = credentials_path(Path(directory))
    stored = _read_file(path)
    secret = settings.client_secret.get_secret_value() if settings.client_secret else None
    values = {
        "admin_url": _text(settings.admin_url) or _text(stored.get("admin_url")),
        "client_id": _text(settings.client_id) or _text(stored.get("client_id")),
        "client_secret": _text(secret) or _text(stored.get("client_secret")),
    }
    missing = [name for name, value in values.items() if value is None]
    if missing:
        variables = ", ".join(f"ARTSTORE_{name.upper()}" for name in missing)
        found = "found no" if not path.exists() else "read"
        raise CredentialsMissing(
            f"no {', '.join(missing)}: {found} {path}; start a cluster with `artstore dev up` "
            f"(it writes that file), point --data-dir (ARTSTORE_DATA_DIR) at its data directory, "
            f"or set {variables}"
        )
    return Credentials(
        str(values["admin_url"]),
        str(values["client_id"]),
        str(values["client_secret"]),
        ingester_url=_text(settings.ingester_url) or _text(stored.get("ingester_url")),
        query_url=_text(settings.query_url) or _text(stored.get("query_url")),
    )
