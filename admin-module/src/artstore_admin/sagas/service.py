"""Saga transitions: start, complete (catalog row in the same transaction), fail and compensate.

States: started -> completed, or started -> compensating -> compensated | failed. `failed` means the undo
could not be done (the element refused or is no longer registered) and needs an operator. Every
transition locks the saga row and checks the state it found, so a repeated or concurrent call settles on
the same final state and records nothing twice.

Types: `upload` (compensation removes the catalog row and what the element stored), `update` (attr.json
is the truth, so "compensation" re-reads it and writes the catalog row to match) and `delete` (cannot be
undone: if the element removed the file the saga rolls forward, else the file is kept).

An idempotency key names one request (its type and payload). Starting again with a key whose saga is
still running or completed returns that saga; a key whose saga was undone is released to the new one,
so a client may retry a failed request with the same key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncConnection

from artstore_admin.audit.log import AuditEntry
from artstore_admin.context import AdminContext
from artstore_admin.elements.client import ElementClient
from artstore_admin.elements.errors import ElementUnreachable
from artstore_admin.sagas import store
from artstore_admin.sagas.catalog import FileAttributes, catalog_values, parse_attributes
from artstore_admin.sagas.metrics import SAGA_OUTCOMES
from artstore_common.cache import invalidation_channel, metadata_key
from artstore_common.errors import Conflict, NotFound, SagaCompensated, UpstreamProblem, ValidationFailed
from artstore_common.redis import key

_log = logging.getLogger("artstore.admin.sagas")
_PUBLISH_TIMEOUT_SECONDS = 2.0
MAX_PAYLOAD_BYTES = 16 * 1024


@dataclass(frozen=True)
class NewSaga:
    type: str
    file_id: uuid.UUID
    storage_element_id: str | None  # required for uploads; updates and deletes take it from the catalog
    idempotency_key: str | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class _Settlement:
    status: str  # compensated | failed | completed (a delete that had happened) | compensating (retry)
    step: str
    details: dict[str, Any]
    document: dict[str, Any] | None = None  # an update's attr.json as the element holds it now


class SagaService:
    def __init__(
        self,
        ctx: AdminContext,
        elements: ElementClient,
        element_changed: Callable[[str], None] = lambda element_id: None,
    ) -> None:
        self._ctx = ctx
        self._engine = ctx.engine
        self._elements = elements
        self._element_changed = element_changed

    # -- reads ---------------------------------------------------------------------------------------

    async def get(self, saga_id: uuid.UUID) -> dict[str, Any]:
        async with self._engine.connect() as connection:
            saga = await store.get(connection, saga_id)
            if saga is None:
                raise NotFound(f"no saga {saga_id}")
            return _describe(
                saga, await store.steps(connection, saga_id), self._ctx.settings.saga_timeout_seconds
            )

    # -- start ---------------------------------------------------------------------------------------

    async def start(self, new: NewSaga, actor: str) -> tuple[dict[str, Any], bool]:
        """Start a saga; with a known idempotency key, return that saga instead (created=False)."""
        if payload_json(new.payload) is None:
            raise ValidationFailed(f"payload: the payload is limited to {MAX_PAYLOAD_BYTES} bytes of JSON")
        async with self._engine.begin() as connection:
            saga_id = await self._by_key(connection, new)
            created = False
            if saga_id is None:
                element_id = await self._check_startable(connection, new)
                saga_id = uuid.uuid4()
                created = await store.insert_saga(
                    connection,
                    {
                        "id": saga_id,
                        "type": new.type,
                        "status": "started",
                        "file_id": new.file_id,
                        "storage_element_id": element_id,
                        "idempotency_key": new.idempotency_key,
                        "payload": new.payload,
                        "created_by": actor,
                    },
                )
                if created:
                    await store.add_step(connection, saga_id, "started", "done", {"by": actor})
                else:
                    # Another request with the same key won the race; answer with its saga.
                    saga_id = await self._by_key(connection, new)
                    assert saga_id is not None
            described = await self._described(connection, saga_id)
        return described, created

    async def _by_key(self, connection: AsyncConnection, new: NewSaga) -> uuid.UUID | None:
        if new.idempotency_key is None:
            return None
        existing = await store.by_idempotency_key(connection, new.idempotency_key, lock=True)
        if existing is None:
            return None
        if existing["status"] in ("compensating", "compensated", "failed"):
            # What the earlier attempt wrote is (being) undone, so nothing answers to the key any more:
            # it is free for a retry, changed or not.
            await store.release_idempotency_key(connection, existing["id"])
            await store.add_step(
                connection, existing["id"], "idempotency_key_released", "done", {"key": new.idempotency_key}
            )
            return None
        _same_request(existing, new)
        return uuid.UUID(str(existing["id"]))

    async def _check_startable(self, connection: AsyncConnection, new: NewSaga) -> str:
        """The element the saga will use: the chosen one for an upload, the file's own otherwise."""
        if new.type == "upload":
            if new.storage_element_id is None:
                raise ValidationFailed("an upload saga needs the storage_element_id it will write to")
            if await store.element_url(connection, new.storage_element_id) is None:
                raise ValidationFailed(
                    f"storage element '{new.storage_element_id}' is not registered; "
                    "register it with POST /api/v1/storage-elements first"
                )
            return new.storage_element_id
        row = await store.catalog_row(connection, new.file_id)
        if row is None:
            raise NotFound(f"file {new.file_id} is not in the catalog")
        stored_on = str(row["storage_element_id"])
        if new.storage_element_id is not None and stored_on != new.storage_element_id:
            raise Conflict(
                f"file {new.file_id} is stored on '{stored_on}', not on '{new.storage_element_id}'"
            )
        return stored_on

    async def heartbeat(self, saga_id: uuid.UUID) -> dict[str, Any]:
        """A long upload keeps its saga from being taken for abandoned by the recovery loop."""
        async with self._engine.begin() as connection:
            saga = _ours(await store.get(connection, saga_id, lock=True), saga_id)
            if saga["status"] != "started":
                raise Conflict(f"saga {saga_id} is {saga['status']}; stop the work it was started for")
            await store.touch(connection, saga_id)
        return {"id": str(saga_id), "status": "started"}

    # -- complete ------------------------------------------------------------------------------------

    async def complete(
        self, saga_id: uuid.UUID, attributes: dict[str, Any] | None, actor: str
    ) -> dict[str, Any]:
        async with self._engine.begin() as connection:
            saga = _ours(await store.get(connection, saga_id, lock=True), saga_id)
            if saga["status"] == "completed":
                return await self._described(connection, saga_id)
            if saga["status"] != "started":
                raise SagaCompensated(
                    f"saga {saga_id} was {saga['status']} ({saga['error'] or 'no reason recorded'}); "
                    "what it wrote was undone, so it cannot complete: start a new saga and upload again"
                )
            await store.add_step(connection, saga_id, "completed", "done", {"by": actor})
            await store.set_status(connection, saga_id, "completed")
            described = await self._described(connection, saga_id)
            # Last before COMMIT: the catalog write appends to the audit chain, whose lock every
            # completion shares, so hold it for as few statements as possible.
            if saga["type"] == "upload":
                event = await self._catalog_upload(connection, saga, attributes, actor)
            elif saga["type"] == "update":
                event = await self._catalog_update(connection, saga, attributes, actor)
            else:
                event = await self._catalog_delete(connection, saga, actor)
        SAGA_OUTCOMES.labels(saga["type"], "completed").inc()
        await self._publish(event)
        if saga["type"] in ("upload", "delete"):
            self._element_changed(str(saga["storage_element_id"]))
        return described

    async def _catalog_upload(
        self, connection: AsyncConnection, saga: store.Row, document: dict[str, Any] | None, actor: str
    ) -> dict[str, Any]:
        attrs = _attributes_of(saga, document)
        if attrs.saga_id is not None and attrs.saga_id != str(saga["id"]):
            raise ValidationFailed(f"the file was written by saga {attrs.saga_id}, not by {saga['id']}")
        assert document is not None
        if not await store.insert_catalog_row(connection, catalog_values(attrs, document, saga["id"])):
            raise Conflict(f"file {attrs.file_id} is already in the catalog; files are written once")
        entry = upload_audit_entry(saga["id"], attrs, via=actor, started_by=saga["created_by"])
        await self._ctx.audit.record_many([entry], connection=connection)
        return catalog_event("created", saga, attributes=document)

    async def _catalog_update(
        self, connection: AsyncConnection, saga: store.Row, document: dict[str, Any] | None, actor: str
    ) -> dict[str, Any]:
        attrs = _attributes_of(saga, document)
        assert document is not None
        if not await store.update_catalog_row(connection, catalog_values(attrs, document, saga["id"])):
            raise Conflict(f"file {attrs.file_id} left the catalog while it was being updated")
        await self._ctx.audit.record(
            "file.updated",
            actor=saga["payload"].get("requested_by") or saga["created_by"],
            subject=str(attrs.file_id),
            details={
                "saga_id": str(saga["id"]),
                "storage_element_id": attrs.storage_element_id,
                "changed": saga["payload"].get("changed", []),
                "via": actor,
            },
            connection=connection,
        )
        return catalog_event("updated", saga, attributes=document)

    async def _catalog_delete(self, connection: AsyncConnection, saga: store.Row, by: str) -> dict[str, Any]:
        await store.remove_catalog_row(connection, saga["file_id"])
        await self._ctx.audit.record(
            "file.deleted",
            actor=saga["payload"].get("requested_by") or saga["created_by"],
            subject=str(saga["file_id"]),
            details={"saga_id": str(saga["id"]), "storage_element_id": saga["storage_element_id"], "via": by},
            connection=connection,
        )
        return catalog_event("deleted", saga)

    # -- fail and compensate -------------------------------------------------------------------------

    async def fail(self, saga_id: uuid.UUID, error: str, actor: str) -> dict[str, Any]:
        return await self.compensate(saga_id, reason=error, step="failure_reported", by=actor)

    async def compensate(self, saga_id: uuid.UUID, *, reason: str, step: str, by: str) -> dict[str, Any]:
        """Undo the saga in reverse order: catalog row first, then what the element stored."""
        async with self._engine.begin() as connection:
            saga = _ours(await store.get(connection, saga_id, lock=True), saga_id)
            if saga["status"] == "completed":
                raise Conflict(
                    f"saga {saga_id} already completed; it can no longer be compensated "
                    "(delete the file to undo an upload)"
                )
            if saga["status"] in ("compensated", "failed"):
                return await self._described(connection, saga_id)
            if saga["status"] == "started":
                await store.set_status(connection, saga_id, "compensating", error=reason)
                await store.add_step(connection, saga_id, step, "done", {"error": reason, "by": by})
            if saga["type"] == "upload":
                await store.remove_catalog_row(connection, saga["file_id"], saga_id=saga_id)
            url = await store.element_url(connection, saga["storage_element_id"])
        settlement = await self._undo_on_element(saga, url)
        return await self._settle(saga_id, settlement, by)

    async def _undo_on_element(self, saga: store.Row, url: str | None) -> _Settlement:
        if url is None:
            error = f"storage element '{saga['storage_element_id']}' is no longer registered; nothing undone"
            return _Settlement("failed", "element_unknown", {"error": error})
        try:
            if saga["type"] == "upload":
                removed = await self._elements.compensate(url, saga["id"])
                return _Settlement("compensated", "element_compensated", {"removed_files": removed})
            if saga["type"] == "update":
                # attr.json is the truth whether or not the element applied the change: index what it says.
                document = await self._elements.attributes(url, saga["file_id"])
                return _Settlement(
                    "compensated", "catalog_resynced", {"file_found": document is not None}, document
                )
            # A delete cannot be undone: if the element already removed the file, finish the saga instead.
            if await self._elements.has_file(url, saga["file_id"]):
                return _Settlement("compensated", "file_kept", {})
            return _Settlement("completed", "delete_rolled_forward", {})
        except UpstreamProblem as exc:
            return _Settlement("failed", "element_refused", {"error": exc.detail})
        except ElementUnreachable as exc:
            _log.warning("saga %s: compensation deferred: %s", saga["id"], exc)
            return _Settlement("compensating", "element_unreachable", {"error": str(exc)})

    async def _settle(self, saga_id: uuid.UUID, settlement: _Settlement, by: str) -> dict[str, Any]:
        event = None
        async with self._engine.begin() as connection:
            saga = await store.get(connection, saga_id, lock=True)
            assert saga is not None
            if saga["status"] != "compensating":
                # A concurrent call settled it first.
                return await self._described(connection, saga_id)
            outcome = "done" if settlement.status != "compensating" else "retry"
            await store.add_step(connection, saga_id, settlement.step, outcome, settlement.details)
            if settlement.status == "completed":
                event = await self._catalog_delete(connection, saga, by)
            elif settlement.document is not None:
                attrs = parse_attributes(settlement.document)
                await store.update_catalog_row(
                    connection, catalog_values(attrs, settlement.document, saga_id)
                )
                event = catalog_event("updated", saga, attributes=settlement.document)
            if settlement.status in ("compensated", "failed"):
                await self._ctx.audit.record(
                    "saga.compensated" if settlement.status == "compensated" else "saga.compensation_failed",
                    outcome="success" if settlement.status == "compensated" else "failure",
                    actor=by,
                    subject=str(saga["file_id"]),
                    details={
                        "saga_id": str(saga_id),
                        "type": saga["type"],
                        "storage_element_id": saga["storage_element_id"],
                        "reason": saga["error"],
                        **settlement.details,
                    },
                    connection=connection,
                )
            # For `compensating` this only renews updated_at, which spaces out the recovery loop's retries.
            await store.set_status(connection, saga_id, settlement.status)
            described = await self._described(connection, saga_id)
        if settlement.status != "compensating":
            SAGA_OUTCOMES.labels(saga["type"], settlement.status).inc()
        await self._publish(event)
        return described

    # -- helpers -------------------------------------------------------------------------------------

    async def _described(self, connection: AsyncConnection, saga_id: uuid.UUID) -> dict[str, Any]:
        saga = await store.get(connection, saga_id)
        assert saga is not None
        return _describe(
            saga, await store.steps(connection, saga_id), self._ctx.settings.saga_timeout_seconds
        )

    async def _publish(self, event: dict[str, Any] | None) -> None:
        if event is not None:
            await self.publish([event])

    async def publish(self, events: list[dict[str, Any]]) -> None:
        """Tell the query modules the catalog changed: each catalog event, and for a change of an existing
        file the cache invalidation (its L2 entry deleted first), in order and in one round trip. Best
        effort: cache TTLs heal a lost one."""
        redis = self._ctx.redis
        if not events or redis is None:
            return
        namespace = self._ctx.settings.redis_namespace
        pipeline = redis.pipeline(transaction=False)
        for event in events:
            pipeline.publish(key(namespace, "catalog", "events"), json.dumps(event))
            if event["event"] != "created":
                pipeline.delete(metadata_key(namespace, event["file_id"]))
                invalidation = {"file_id": event["file_id"], "event": event["event"]}
                pipeline.publish(invalidation_channel(namespace), json.dumps(invalidation))
        try:
            async with asyncio.timeout(_PUBLISH_TIMEOUT_SECONDS):
                await pipeline.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            files = ", ".join(event["file_id"] for event in events)
            _log.warning("catalog events for %s not published: %s", files, exc)


def payload_json(payload: dict[str, Any]) -> str | None:
    """The payload as the JSON text stored, or None when it is over MAX_PAYLOAD_BYTES."""
    text = json.dumps(payload, default=str)
    return text if len(text) <= MAX_PAYLOAD_BYTES else None


def _ours(saga: store.Row | None, saga_id: uuid.UUID) -> store.Row:
    if saga is None:
        raise NotFound(f"no saga {saga_id}")
    if saga["type"] not in store.SAGA_TYPES:
        raise Conflict(f"saga {saga_id} is a {saga['type']} saga; the registry drives it, not this endpoint")
    return saga


def _same_request(existing: store.Row, new: NewSaga) -> None:
    if (existing["type"], existing["payload"]) != (new.type, new.payload):
        raise Conflict(
            f"idempotency key '{new.idempotency_key}' was already used for saga {existing['id']} "
            f"(a {existing['type']} with other parameters); use a new key for a different request"
        )


def _attributes_of(saga: store.Row, document: dict[str, Any] | None) -> FileAttributes:
    if document is None:
        raise ValidationFailed(f"completing an {saga['type']} saga needs the element's attributes")
    attrs = parse_attributes(document)
    if attrs.file_id != saga["file_id"]:
        raise ValidationFailed(f"the attributes describe file {attrs.file_id}, the saga {saga['file_id']}")
    if attrs.storage_element_id != saga["storage_element_id"]:
        raise ValidationFailed(
            f"the attributes come from element '{attrs.storage_element_id}', "
            f"the saga chose '{saga['storage_element_id']}'"
        )
    return attrs


def upload_audit_entry(
    saga_id: uuid.UUID,
    attrs: FileAttributes,
    *,
    via: str,
    started_by: str | None = None,
    request_id: str | None = None,
) -> AuditEntry:
    """The audit record of a catalogued upload: by the account that uploaded it (attr.json's created_by, else
    who started the saga), via the service that completed the saga."""
    return AuditEntry(
        "file.uploaded",
        actor=attrs.created_by or started_by,
        subject=str(attrs.file_id),
        details={
            "saga_id": str(saga_id),
            "storage_element_id": attrs.storage_element_id,
            "original_filename": attrs.original_filename,
            "size_bytes": attrs.size_bytes,
            "sha256": attrs.sha256,
            "via": via,
        },
        request_id=request_id,
    )


def catalog_event(
    kind: str, saga: Mapping[Any, Any], *, attributes: dict[str, Any] | None = None
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event": kind,
        "file_id": str(saga["file_id"]),
        "storage_element_id": saga["storage_element_id"],
        "saga_id": str(saga["id"]),
    }
    if attributes is not None:
        event["attributes"] = attributes
    return event


def abandoned_after_seconds(timeout: float) -> dict[str, float]:
    """What a started saga's answer adds: how long after its last heartbeat the recovery loop takes it for
    abandoned and undoes it. An ingester holding a saga started ahead uses it only well within this."""
    return {"abandoned_after_seconds": timeout}


def _describe(saga: store.Row, steps: list[store.Row], abandoned_after: float) -> dict[str, Any]:
    return {
        "id": str(saga["id"]),
        "type": saga["type"],
        "status": saga["status"],
        "file_id": None if saga["file_id"] is None else str(saga["file_id"]),
        "storage_element_id": saga["storage_element_id"],
        "idempotency_key": saga["idempotency_key"],
        "payload": saga["payload"],
        "error": saga["error"],
        "created_by": saga["created_by"],
        "created_at": saga["created_at"].isoformat(),
        "updated_at": saga["updated_at"].isoformat(),
        **(abandoned_after_seconds(abandoned_after) if saga["status"] == "started" else {}),
        "steps": [
            {
                "step": step["step"],
                "status": step["status"],
                "details": step["details"],
                "at": step["created_at"].isoformat(),
            }
            for step in steps
        ],
    }
