"""The query module in the dev cluster: the system account it runs as, and how its process is started."""

from __future__ import annotations

import sys
from pathlib import Path

from artstore_client.dev._environment import service_environment, system_service_settings
from artstore_client.dev.admin import ADMIN_DATABASE_SCHEMA
from artstore_client.dev.system_accounts import SystemAccount, SystemAccountKind

QUERY_PACKAGE = "artstore_query"
# READONLY: it only reads for its callers; is_system adds `internal`, so that the elements do not rate-limit
# the reads it makes on behalf of many callers.
QUERY_ACCOUNT = SystemAccountKind(service="query module", role="READONLY", name_prefix="dev-query-")


def query_environment(
    *,
    root: Path,
    port: int,
    admin_url: str,
    account: SystemAccount,
    database_url: str,
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
    # It searches the admin's catalog in place: the admin's database and schema, read and never migrated.
    settings.update({"DATABASE_URL": database_url, "DATABASE_SCHEMA": ADMIN_DATABASE_SCHEMA})
    return service_environment("ARTSTORE_QUERY_", root, settings)


def query_command() -> list[str]:
    return [sys.executable, "-m", QUERY_PACKAGE]
