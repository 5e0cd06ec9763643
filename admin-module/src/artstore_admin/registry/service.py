"""The storage-element registry: register, edit, unregister, and keep each row current by polling /info."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from artstore_admin.audit.log import AuditLog
from artstore_admin.elements.client import ElementClient
from artstore_admin.registry import repository
from artstore_admin.registry.publisher import DiscoveryPublisher
from artstore_admin.registry.repository import DuplicateElement, Row
from artstore_common.errors import AlreadyExists, ArtStoreError, Conflict, NotFound

_log = logging.getLogger("artstore.admin.registry")


def normalize_url(url: str) -> str:
    return url.strip().rstrip("/")


class RegistryService:
    def __init__(
        self, engine: AsyncEngine, client: ElementClient, publisher: DiscoveryPublisher, audit: AuditLog
    ) -> None:
        self._engine = engine
        self._client = client
        self._publisher = publisher
        self._audit = audit
        self._changed: set[str] = set()
        self._change_noted = asyncio.Event()

    def element_changed(self, element_id: str) -> None:
        """A file landed on or left the element: its row (file count, space) is re-read soon."""
        self._changed.add(element_id)
        self._change_noted.set()

    async def changed_elements(self, within: float) -> set[str]:
        """The elements noted as changed since the last call, waiting up to `within` seconds for the first."""
        if not self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._change_noted.wait(), within)
        changed, self._changed = self._changed, set()
        self._change_noted.clear()
        return changed

    async def refresh(self, element_ids: set[str]) -> None:
        """Re-read these elements' /info now (the rest wait for the next round)."""
        async with self._engine.connect() as connection:
            rows = [row for row in await repository.list_all(connection) if row["id"] in element_ids]
        await asyncio.gather(*(self._poll(row, conditional=True) for row in rows))
        await self._publish_if_stale()

    async def list(self) -> list[Row]:
        async with self._engine.connect() as connection:
            return await repository.list_all(connection)

    async def get(self, element_id: str) -> Row:
        async with self._engine.connect() as connection:
            row = await repository.get(connection, element_id)
        if row is None:
            raise NotFound(f"no storage element '{element_id}' is registered")
        return row

    async def register(self, url: str, *, name: str | None, priority: int | None, actor: str | None) -> Row:
        url = normalize_url(url)
        info = await self._client.info(url)
        values: dict[str, Any] = {
            "id": info.id,
            "name": name or info.name,
            "url": url,
            "priority": priority if priority is not None else (info.priority or 100),
            "status": "online",
            "last_seen_at": datetime.now(UTC),
            **repository.info_values(info),
        }
        try:
            async with self._engine.begin() as connection:
                row = await repository.insert_element(connection, values)
                await self._audit.record(
                    "storage_element.register",
                    actor=actor,
                    subject=info.id,
                    details={"url": url, "mode": info.mode, "priority": values["priority"]},
                    connection=connection,
                )
        except DuplicateElement as exc:
            raise AlreadyExists(
                f"storage element '{info.id}' is registered already; PATCH it to change its URL",
                extra={"id": info.id},
            ) from exc
        await self._publisher.publish()
        return row

    async def update(self, element_id: str, changes: dict[str, Any], *, actor: str | None) -> Row:
        current = await self.get(element_id)
        values = dict(changes)
        if "url" in values:
            values["url"] = normalize_url(values["url"])
            if values["url"] != current["url"]:
                info = await self._client.info(values["url"])
                if info.id != element_id:
                    raise Conflict(
                        f"the element at {values['url']} is '{info.id}', not '{element_id}'; "
                        "register it as a new element instead"
                    )
                values.update(repository.info_values(info), status="online", last_seen_at=datetime.now(UTC))
        async with self._engine.begin() as connection:
            row = await repository.update_element(connection, element_id, values)
            if row is None:
                raise NotFound(f"no storage element '{element_id}' is registered")
            await self._audit.record(
                "storage_element.update",
                actor=actor,
                subject=element_id,
                details={k: changes[k] for k in ("name", "priority", "url") if k in changes},
                connection=connection,
            )
        if repository.visible_change(current, row):
            await self._publisher.publish()
        return row

    async def unregister(self, element_id: str, *, actor: str | None) -> None:
        async with self._engine.begin() as connection:
            if not await repository.delete_element(connection, element_id):
                raise NotFound(f"no storage element '{element_id}' is registered")
            await self._audit.record(
                "storage_element.unregister", actor=actor, subject=element_id, connection=connection
            )
        await self._publisher.publish()

    async def sync(self, element_id: str) -> Row:
        before = await self.get(element_id)
        after = await self._poll(before, conditional=False)
        if after is None:
            raise NotFound(f"no storage element '{element_id}' is registered")
        await self._publish_if_stale()
        return after

    async def poll_all(self) -> bool:
        """Refresh every row from its element; True when some element did not answer."""
        async with self._engine.connect() as connection:
            rows = await repository.list_all(connection)
        polled = await asyncio.gather(*(self._poll(row, conditional=True) for row in rows))
        await self._publish_if_stale()
        return any(row is not None and row["status"] == "offline" for row in polled)

    async def _publish_if_stale(self) -> None:
        async with self._engine.connect() as connection:
            rows = await repository.list_all(connection)
        publisher = self._publisher
        if publisher.pending or publisher.differs(rows) or await publisher.missing():
            await publisher.publish()

    async def _poll(self, row: Row, *, conditional: bool) -> Row | None:
        """Refresh one row from its element; None when someone else changed the row meanwhile."""
        values: dict[str, Any]
        try:
            info = await self._client.info(row["url"])
            if info.id != row["id"]:
                raise Conflict(f"{row['url']} now answers as element '{info.id}'")
        except ArtStoreError as exc:
            values = {"status": "offline", "last_error": exc.detail}
            if row["status"] != "offline":
                _log.warning("storage element %s is offline: %s", row["id"], exc.detail)
        else:
            values = {
                **repository.info_values(info),
                "status": "online",
                "last_seen_at": datetime.now(UTC),
                "last_error": None,
            }
            if row["status"] != "online":
                _log.info("storage element %s is online", row["id"])
        async with self._engine.begin() as connection:
            # Conditional: a poll that read /info before a mode change must not overwrite its result.
            return await repository.update_element(
                connection, row["id"], values, if_updated_at=row["updated_at"] if conditional else None
            )
