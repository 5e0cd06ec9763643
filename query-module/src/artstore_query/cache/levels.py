"""One file's attributes through the four levels of DESIGN section 6.

L1 (this process) -> L2 (Redis) -> L3 (the catalog row, trusted for `l3_ttl_seconds` after its
`synced_at`) -> L4 (the element's attr.json, the source of truth). A read fills every level above the one
that answered. Redis is optional: when it fails, L2 is skipped for a while and reads go on below it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from artstore_common.cache import metadata_key
from artstore_common.errors import DependencyUnavailable, NotFound, ServiceUnavailable
from artstore_query.cache.invalidation import InvalidationListener
from artstore_query.cache.local import LocalCache
from artstore_query.catalog import files
from artstore_query.clients.elements import ElementClient
from artstore_query.metrics import CACHE_READS, L3_REVALIDATIONS

__all__ = ["LocalCache", "Metadata", "MetadataReader"]

_log = logging.getLogger("artstore.query.cache")
_REDIS_RETRY_SECONDS = 5.0
# The catalog columns that repeat a field of attr.json and that a later change can alter.
_INDEXED_FIELDS = ("description", "tags", "metadata", "status")
_DATABASE_FAILURES = (DBAPIError, PoolTimeout, OSError, TimeoutError)


@dataclass(frozen=True)
class Metadata:
    attributes: dict[str, Any]
    level: str  # L1, L2, L3 or L4: the level that answered

    @property
    def storage_element_id(self) -> str:
        return str(self.attributes["storage_element_id"])


class MetadataReader:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        redis: Redis | None,
        namespace: str,
        local: LocalCache,
        invalidations: InvalidationListener,
        elements: ElementClient,
        l2_ttl_seconds: int,
        l3_ttl_seconds: float,
    ) -> None:
        self._engine = engine
        self._redis = redis
        self._namespace = namespace
        self.local = local
        self.invalidations = invalidations
        self._elements = elements
        self._l2_ttl = l2_ttl_seconds
        self._l3_ttl = l3_ttl_seconds
        self._redis_down_until = 0.0

    async def read(self, file_id: uuid.UUID) -> Metadata:
        name = str(file_id)
        cached = self.local.get(name)
        if cached is not None:
            return self._answer(cached, "L1")
        mark = self.local.mark()
        document = await self._from_redis(name)
        if document is not None:
            self.local.put(name, document, mark)
            return self._answer(document, "L2")
        document, level = await self._from_catalog(file_id)
        if self.local.fresh(name, mark):
            await self._to_redis(name, document)
            self.local.put(name, document, mark)
        return self._answer(document, level)

    @staticmethod
    def _answer(document: dict[str, Any], level: str) -> Metadata:
        CACHE_READS.labels(level).inc()
        return Metadata(document, level)

    # -- L2 ---------------------------------------------------------------------------------------------

    def _redis_usable(self) -> bool:
        return self._redis is not None and time.monotonic() >= self._redis_down_until

    def _redis_failed(self, exc: BaseException) -> None:
        if time.monotonic() >= self._redis_down_until:
            _log.warning("Redis unreachable (%s); L2 skipped for %g s", exc, _REDIS_RETRY_SECONDS)
        self._redis_down_until = time.monotonic() + _REDIS_RETRY_SECONDS

    async def _from_redis(self, name: str) -> dict[str, Any] | None:
        if not self._redis_usable():
            return None
        assert self._redis is not None
        try:
            raw = await self._redis.get(metadata_key(self._namespace, name))
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)
            return None
        if raw is None:
            return None
        try:
            document: dict[str, Any] = json.loads(raw)
        except ValueError:
            return None
        return document

    async def _to_redis(self, name: str, document: dict[str, Any]) -> None:
        if not self._redis_usable():
            return
        assert self._redis is not None
        try:
            await self._redis.set(
                metadata_key(self._namespace, name), json.dumps(document, default=str), ex=self._l2_ttl
            )
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)

    # -- L3 and L4 --------------------------------------------------------------------------------------

    async def _from_catalog(self, file_id: uuid.UUID) -> tuple[dict[str, Any], str]:
        statement = select(files.c.attributes, files.c.status, files.c.storage_element_id, files.c.synced_at)
        try:
            async with self._engine.connect() as connection:
                row = (await connection.execute(statement.where(files.c.file_id == file_id))).first()
        except _DATABASE_FAILURES as exc:
            raise DependencyUnavailable(
                f"the catalog database is unavailable ({type(exc).__name__}) and {file_id} is not cached; "
                "retry later"
            ) from exc
        if row is None or row.status != "active":
            CACHE_READS.labels("miss").inc()
            raise NotFound(f"no file {file_id}")
        document: dict[str, Any] = dict(row.attributes)
        age = (datetime.now(UTC) - row.synced_at).total_seconds()
        if age <= self._l3_ttl:
            return document, "L3"
        return await self._revalidate(file_id, row.storage_element_id, document)

    async def _revalidate(
        self, file_id: uuid.UUID, element_id: str, stale: dict[str, Any]
    ) -> tuple[dict[str, Any], str]:
        """The catalog row is older than its TTL: the element's attr.json decides, and the row is refreshed.
        An element that cannot answer leaves the (possibly stale) row as the best answer there is."""
        try:
            document = await self._elements.attributes(element_id, file_id)
        except NotFound:
            L3_REVALIDATIONS.labels("gone").inc()
            CACHE_READS.labels("miss").inc()
            _log.warning("catalog lists %s on %s but the element does not have it", file_id, element_id)
            raise
        except ServiceUnavailable as exc:
            L3_REVALIDATIONS.labels("element_unavailable").inc()
            _log.warning("serving the catalog's row of %s unrevalidated: %s", file_id, exc.detail)
            return stale, "L3"
        await self._refresh_row(file_id, document)
        if document.get("status", "active") != "active":
            L3_REVALIDATIONS.labels("gone").inc()
            CACHE_READS.labels("miss").inc()
            raise NotFound(f"no file {file_id}")
        L3_REVALIDATIONS.labels("changed" if document != stale else "unchanged").inc()
        return document, "L4"

    async def _refresh_row(self, file_id: uuid.UUID, document: dict[str, Any]) -> None:
        """Write attr.json back into the catalog row (an index of it), unless a newer change got there first."""
        values: dict[str, Any] = {"attributes": document, "synced_at": datetime.now(UTC)}
        values.update({column: document[column] for column in _INDEXED_FIELDS if column in document})
        conditions = [files.c.file_id == file_id]
        updated_at = _timestamp(document.get("updated_at"))
        if updated_at is not None:
            values["updated_at"] = updated_at
            conditions.append(files.c.updated_at <= updated_at)
        statement = update(files).where(*conditions).values(**values)
        try:
            async with self._engine.begin() as connection:
                await connection.execute(statement)
        except _DATABASE_FAILURES as exc:
            # The answer stands; the row is simply revalidated again on a later read.
            _log.warning("could not refresh the catalog row of %s: %s", file_id, exc)


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
