"""Publishes the discovery snapshot (DESIGN section 5): SET at the key, PUBLISH on the channel.

Versions come from the PostgreSQL sequence `discovery_version`, so they grow across restarts and across
admin processes. A transaction-scoped advisory lock spans taking the version, reading the registry and
writing to Redis, so concurrent publishers (several admins) write in version order and a higher version
never carries older content.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from artstore_admin.registry import repository
from artstore_common.discovery import SNAPSHOT_FIELDS, discovery_channel, discovery_key

_log = logging.getLogger("artstore.admin.discovery")
_PUBLISH_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('artstore-discovery-publish'))")
_NEXT_VERSION = text("SELECT nextval('discovery_version')")


def snapshot_entry(row: dict[str, Any]) -> dict[str, Any]:
    entry = {field: row.get(field) for field in SNAPSHOT_FIELDS}
    seen = entry["last_seen_at"]
    entry["last_seen_at"] = seen.isoformat() if isinstance(seen, datetime) else seen
    return entry


class DiscoveryPublisher:
    def __init__(self, engine: AsyncEngine, redis: Redis | None, namespace: str) -> None:
        self._engine = engine
        self._redis = redis
        self.key = discovery_key(namespace)
        self.channel = discovery_channel(namespace)
        # Set when a publish failed, so the next poll publishes even if nothing changed meanwhile.
        self.pending = True
        self._published: dict[str, dict[str, Any]] = {}

    def differs(self, rows: list[dict[str, Any]]) -> bool:
        """Whether `rows` differ visibly from what this process published last."""
        if {row["id"] for row in rows} != set(self._published):
            return True
        return any(repository.visible_change(self._published[row["id"]], row) for row in rows)

    async def publish(self) -> int | None:
        """Publish the registry as it is now; the version, or None when it failed (logged, retried later)."""
        if self._redis is None:
            return None
        try:
            async with self._engine.begin() as connection:
                await connection.execute(_PUBLISH_LOCK)
                version = int((await connection.execute(_NEXT_VERSION)).scalar_one())
                entries = [snapshot_entry(row) for row in await repository.list_all(connection)]
                snapshot = {
                    "version": version,
                    "generated_at": datetime.now(UTC).isoformat(),
                    "storage_elements": entries,
                }
                message = json.dumps(snapshot, separators=(",", ":"))
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.set(self.key, message)
                    pipe.publish(self.channel, message)
                    await pipe.execute()
            self._published = {entry["id"]: entry for entry in entries}
        except (RedisError, OSError, SQLAlchemyError) as exc:
            if not self.pending:
                _log.warning("publishing the discovery snapshot failed, will retry: %s", exc)
            self.pending = True
            return None
        if self.pending:
            _log.info("discovery snapshot published", extra={"version": version})
        self.pending = False
        return version

    async def missing(self) -> bool:
        """True when the key is gone (a fresh Redis after a restart) and should be republished."""
        if self._redis is None:
            return False
        try:
            return not await self._redis.exists(self.key)
        except (RedisError, OSError):
            self.pending = True
            return False
