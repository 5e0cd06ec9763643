"""The environment dev up hands each service it starts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from artstore_client.dev.system_accounts import SystemAccount

# Every child of a dev up carries this, so that a later dev up recognises the ones an earlier one left.
DATA_DIR_MARKER = "ARTSTORE_DEV_DATA_DIR"


def service_environment(prefix: str, root: Path, settings: Mapping[str, str]) -> dict[str, str]:
    """The shell's environment with `settings` under `prefix`, and the marker of the data directory.

    dev up alone configures its services: a variable under the service's prefix in the shell is not passed
    on (say, a schema name that would apply to both storage elements at once, or a client setting such as
    ARTSTORE_INGESTER_URL that shares the prefix and means nothing to the service).
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith(prefix)}
    env.update({prefix + name: value for name, value in settings.items()})
    env[DATA_DIR_MARKER] = str(root)
    return env


def system_service_settings(
    *,
    port: int,
    admin_url: str,
    account: SystemAccount,
    redis_url: str,
    redis_namespace: str,
    discovery_fallback_path: Path,
) -> dict[str, str]:
    """What the ingester and the query module both take: where they listen, the admin whose tokens they
    check and ask for, the account they act as, and the discovery snapshot they follow."""
    return {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "ADMIN_URL": admin_url,
        "JWKS_URL": admin_url + "/.well-known/jwks.json",
        "CLIENT_ID": account.client_id,
        "CLIENT_SECRET": account.client_secret,
        "REDIS_URL": redis_url,
        "REDIS_NAMESPACE": redis_namespace,
        "DISCOVERY_FALLBACK_PATH": str(discovery_fallback_path),
    }
