"""The ingester in the dev cluster: the system account it runs as, and how its process is started."""

from __future__ import annotations

import sys
from pathlib import Path

from artstore_client.dev._environment import service_environment, system_service_settings
from artstore_client.dev.system_accounts import SystemAccount, SystemAccountKind

INGESTER_PACKAGE = "artstore_ingester"
# USER: it writes and deletes files for its callers; is_system adds `internal` for the elements and sagas.
INGESTER_ACCOUNT = SystemAccountKind(service="ingester", role="USER", name_prefix="dev-ingester-")


def ingester_environment(
    *,
    root: Path,
    port: int,
    admin_url: str,
    account: SystemAccount,
    redis_url: str,
    redis_namespace: str,
    discovery_fallback_path: Path,
) -> dict[str, str]:
    settings = system_service_settings(
        port=port,
        admin_url=admin_url,
        account=account,
        redis_url=redis_url,
        redis_namespace=redis_namespace,
        discovery_fallback_path=discovery_fallback_path,
    )
    return service_environment("ARTSTORE_INGESTER_", root, settings)


def ingester_command() -> list[str]:
    return [sys.executable, "-m", INGESTER_PACKAGE]
