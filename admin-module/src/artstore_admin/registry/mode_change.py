"""The mode-change saga (DESIGN section 4): SE transition, registry update, discovery publish.

The element is the source of truth for its mode. Its transition is the one step that matters; once it
succeeded nothing is undone. If the registry update or the publish fails afterwards, the next poll reads
the new mode from the element's /info and heals both.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from artstore_admin.audit.log import AuditLog
from artstore_admin.elements.client import ElementClient
from artstore_admin.elements.errors import ElementUnreachable
from artstore_admin.registry import repository
from artstore_admin.registry.publisher import DiscoveryPublisher
from artstore_admin.sagas import store
from artstore_common.errors import ArtStoreError, DependencyUnavailable, NotFound, UpstreamProblem

_log = logging.getLogger("artstore.admin.registry")
ACTION = "storage_element.mode_change"


class ModeChange:
    def __init__(
        self, engine: AsyncEngine, client: ElementClient, publisher: DiscoveryPublisher, audit: AuditLog
    ) -> None:
        self._engine = engine
        self._client = client
        self._publisher = publisher
        self._audit = audit

    async def run(self, element_id: str, target_mode: str, *, actor: str | None) -> dict[str, Any]:
        try:
            async with self._engine.begin() as connection:
                row = await repository.get(connection, element_id)
                if row is None:
                    raise NotFound(f"no storage element '{element_id}' is registered")
                payload = {"from": row["mode"], "to": target_mode}
                saga_id = uuid.uuid4()
                await store.insert_saga(
                    connection,
                    {
                        "id": saga_id,
                        "type": "mode_change",
                        "status": "started",
                        "storage_element_id": element_id,
                        "payload": payload,
                        "created_by": actor,
                    },
                )
                await store.add_step(connection, saga_id, "se_transition", "started", {"url": row["url"]})
        except SQLAlchemyError as exc:
            raise DependencyUnavailable(f"the registry database is unavailable: {exc}") from exc

        try:
            answer = await self._client.change_mode(row["url"], target_mode)
        except (UpstreamProblem, ElementUnreachable) as exc:
            await self._failed(saga_id, element_id, payload, actor, exc)
            if isinstance(exc, ElementUnreachable):
                raise DependencyUnavailable(
                    f"{exc.detail}; nothing was changed, retry when the element is back",
                    code="SE_UNAVAILABLE",
                ) from exc
            raise

        payload = {"from": answer.get("previous_mode", row["mode"]), "to": answer.get("mode", target_mode)}
        version: int | None = None
        try:
            async with self._engine.begin() as connection:
                await store.add_step(connection, saga_id, "se_transition", "completed", answer)
                await repository.update_element(connection, element_id, {"mode": payload["to"]})
                await store.add_step(
                    connection, saga_id, "registry_update", "completed", {"mode": payload["to"]}
                )
            version = await self._publisher.publish()
            async with self._engine.begin() as connection:
                status = "completed" if version is not None else "failed"
                await store.add_step(connection, saga_id, "discovery_publish", status, {"version": version})
                await store.set_status(connection, saga_id, "completed", payload=payload)
                await self._audit.record(
                    ACTION,
                    actor=actor,
                    subject=element_id,
                    details={**payload, "saga_id": str(saga_id), "discovery_version": version},
                    connection=connection,
                )
        except SQLAlchemyError as exc:
            # The element changed already and is the source of truth: the next poll heals the registry.
            _log.warning("mode changed on %s but recording it failed: %s", element_id, exc)
        return {
            "id": element_id,
            "saga_id": str(saga_id),
            "previous_mode": payload["from"],
            "mode": payload["to"],
            "discovery_version": version,
        }

    async def _failed(
        self, saga_id: Any, element_id: str, payload: dict[str, Any], actor: str | None, exc: ArtStoreError
    ) -> None:
        failure = {"code": exc.code, "detail": exc.detail}
        try:
            async with self._engine.begin() as connection:
                await store.add_step(connection, saga_id, "se_transition", "failed", failure)
                await store.set_status(connection, saga_id, "failed", error=f"{exc.code}: {exc.detail}")
                await self._audit.record(
                    ACTION,
                    outcome="failure",
                    actor=actor,
                    subject=element_id,
                    details={**payload, **failure, "saga_id": str(saga_id)},
                    connection=connection,
                )
        except SQLAlchemyError as db_exc:
            _log.warning("could not record the failed mode change of %s: %s", element_id, db_exc)
