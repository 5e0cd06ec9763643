"""The admin module in the dev cluster: its secrets (made once, kept 0600) and how its process is started."""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from artstore_client._files import write_private
from artstore_client.dev._environment import service_environment

ADMIN_PACKAGE = "artstore_admin"
BOOTSTRAP_CLIENT_ID = "artstore-admin"
# The schema of the admin's tables, its catalog among them, which the query module reads.
ADMIN_DATABASE_SCHEMA = "admin"


class AdminSecretsUnreadable(Exception):
    """The admin's secrets file exists but cannot be used; the message names it."""


@dataclass(frozen=True)
class AdminSecrets:
    key_encryption_key: str
    bootstrap_client_id: str
    bootstrap_client_secret: str

    @classmethod
    def load_or_create(cls, path: Path) -> AdminSecrets:
        """The same secrets on every start: the signing keys in PostgreSQL are encrypted with this key."""
        try:
            document = json.loads(path.read_text())
            return cls(**{name: str(document[name]) for name in cls.__dataclass_fields__})
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AdminSecretsUnreadable(
                f"cannot use {path} ({exc}); restore it, or start with a fresh --data-dir"
            ) from exc
        created = cls(
            key_encryption_key=base64.b64encode(os.urandom(32)).decode(),
            bootstrap_client_id=BOOTSTRAP_CLIENT_ID,
            bootstrap_client_secret=secrets.token_urlsafe(32),
        )
        write_private(path, (json.dumps(asdict(created), indent=2) + "\n").encode())
        return created


def admin_environment(
    *,
    root: Path,
    port: int,
    url: str,
    database_url: str,
    redis_url: str,
    redis_namespace: str,
    admin_secrets: AdminSecrets,
) -> dict[str, str]:
    return service_environment(
        "ARTSTORE_ADMIN_",
        root,
        {
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "PUBLIC_URL": url,
            "DATABASE_URL": database_url,
            "DATABASE_SCHEMA": ADMIN_DATABASE_SCHEMA,
            "REDIS_URL": redis_url,
            "REDIS_NAMESPACE": redis_namespace,
            "KEY_ENCRYPTION_KEY": admin_secrets.key_encryption_key,
            "BOOTSTRAP_CLIENT_ID": admin_secrets.bootstrap_client_id,
            "BOOTSTRAP_CLIENT_SECRET": admin_secrets.bootstrap_client_secret,
            # In dev the bootstrap account also holds `internal`, so that the storage elements' write
            # endpoints can be called directly with curl (see the README).
            "BOOTSTRAP_IS_SYSTEM": "true",
        },
    )


def admin_command() -> list[str]:
    return [sys.executable, "-m", ADMIN_PACKAGE]
