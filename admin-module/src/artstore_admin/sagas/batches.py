"""Many sagas started and completed in one request: the ingester's uploads coalesced (DESIGN section 4).

Each item means exactly what the single endpoint means and gets the answer the single endpoint would give
(status and saga, or a problem), but the common case costs one transaction for the whole batch: upload
sagas without an idempotency key are inserted together, and upload completions catalog their files, write
their steps and append their audit records (one hold of the audit chain's lock) together. Anything else
(keys, updates, deletes, repeated completions) goes through the single-saga path, item by item, after.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from artstore_admin.context import AdminContext
from artstore_admin.sagas import store
from artstore_admin.sagas.catalog import FileAttributes, catalog_values
from artstore_admin.sagas.metrics import SAGA_OUTCOMES
from artstore_admin.sagas.service import (
    NewSaga,
    SagaService,
    catalog_event,
    upload_attributes,
    upload_audit_entry,
)
from artstore_common.errors import ArtStoreError, Conflict, SagaCompensated, ValidationFailed, problem_body


@dataclass(frozen=True)
class Completion:
    saga_id: uuid.UUID
    attributes: dict[str, Any] | None
    request_id: str | None = None  # the upload's own request, for the audit record


@dataclass(frozen=True)
class ItemResult:
    status: int
    saga: dict[str, Any] | None = None
    problem: ArtStoreError | None = None

    @classmethod
    def refused(cls, exc: ArtStoreError) -> ItemResult:
        return cls(exc.status, problem=exc)

    def as_dict(self) -> dict[str, Any]:
        if self.problem is not None:
            return {"status": self.status, "problem": problem_body(self.problem)}
        return {"status": self.status, "saga": self.saga}


@dataclass
class _Upload:
    index: int
    saga: store.Row
    attrs: FileAttributes
    document: dict[str, Any]
    request_id: str | None


class SagaBatches:
    def __init__(
        self, ctx: AdminContext, sagas: SagaService, element_changed: Callable[[str], None] = lambda _: None
    ) -> None:
        self._ctx = ctx
        self._sagas = sagas
        self._element_changed = element_changed

    async def run(
        self, news: list[NewSaga], completions: list[Completion], actor: str
    ) -> tuple[list[ItemResult], list[ItemResult]]:
        """Start `news` and complete `completions`: the answers to each, in their order."""
        started: dict[int, ItemResult] = {}
        completed: dict[int, ItemResult] = {}
        plain = {i: new for i, new in enumerate(news) if new.type == "upload" and new.idempotency_key is None}
        done: list[_Upload] = []
        if plain or completions:
            async with self._ctx.engine.begin() as connection:
                started.update(await self._start_plain_uploads(connection, plain, actor))
                # Last before COMMIT: the audit chain's lock is held from the first record to the end.
                done = await self._complete_uploads(connection, completions, completed, actor)
        for upload in done:
            SAGA_OUTCOMES.labels("upload", "completed").inc()
            completed[upload.index] = ItemResult(
                200, _summary(upload.saga, "completed", upload.saga["created_at"])
            )
        await self._sagas.publish([catalog_event("created", u.saga, attributes=u.document) for u in done])
        for element_id in {str(u.saga["storage_element_id"]) for u in done}:
            self._element_changed(element_id)
        # What the batch path left alone gets the single path's answer: keys, updates, deletes, repeats.
        for index, new in enumerate(news):
            if index not in started:
                started[index] = await self._one(self._start_one(new, actor))
        for index, completion in enumerate(completions):
            if index not in completed:
                completed[index] = await self._one(self._complete_one(completion, actor))
        return [started[i] for i in range(len(news))], [completed[i] for i in range(len(completions))]

    async def _start_one(self, new: NewSaga, actor: str) -> ItemResult:
        saga, created = await self._sagas.start(new, actor)
        return ItemResult(201 if created else 200, saga)

    async def _complete_one(self, completion: Completion, actor: str) -> ItemResult:
        return ItemResult(200, await self._sagas.complete(completion.saga_id, completion.attributes, actor))

    @staticmethod
    async def _one(call: Awaitable[ItemResult]) -> ItemResult:
        try:
            return await call
        except ArtStoreError as exc:
            return ItemResult.refused(exc)

    async def _start_plain_uploads(
        self, connection: AsyncConnection, news: dict[int, NewSaga], actor: str
    ) -> dict[int, ItemResult]:
        if not news:
            return {}
        results: dict[int, ItemResult] = {}
        rows: dict[int, dict[str, Any]] = {}
        wanted = {new.storage_element_id for new in news.values() if new.storage_element_id}
        registered = await store.registered_elements(connection, wanted) if wanted else set()
        for index, new in news.items():
            if new.storage_element_id is None:
                results[index] = ItemResult.refused(
                    ValidationFailed("an upload saga needs the storage_element_id it will write to")
                )
            elif new.storage_element_id not in registered:
                results[index] = ItemResult.refused(
                    ValidationFailed(
                        f"storage element '{new.storage_element_id}' is not registered; "
                        "register it with POST /api/v1/storage-elements first"
                    )
                )
            else:
                rows[index] = {
                    "id": uuid.uuid4(),
                    "type": "upload",
                    "status": "started",
                    "file_id": new.file_id,
                    "storage_element_id": new.storage_element_id,
                    "idempotency_key": None,
                    "payload": new.payload,
                    "created_by": actor,
                }
        if rows:
            stamps = await store.insert_sagas(connection, list(rows.values()))
            await store.add_steps(
                connection,
                [
                    {"saga_id": row["id"], "step": "started", "status": "done", "details": {"by": actor}}
                    for row in rows.values()
                ],
            )
            for index, row in rows.items():
                results[index] = ItemResult(201, _summary(row, "started", stamps[row["id"]]["created_at"]))
        return results

    async def _complete_uploads(
        self,
        connection: AsyncConnection,
        completions: list[Completion],
        results: dict[int, ItemResult],
        actor: str,
    ) -> list[_Upload]:
        """Catalog what the completions' started upload sagas stored; refusals go into `results`."""
        if not completions:
            return []
        uploads: list[_Upload] = []
        found = {
            row["id"]: row
            for row in await store.get_many(connection, [c.saga_id for c in completions], lock=True)
        }
        seen: set[uuid.UUID] = set()
        for index, completion in enumerate(completions):
            saga = found.get(completion.saga_id)
            if saga is None or saga["type"] != "upload" or completion.saga_id in seen:
                continue  # the single path answers: not found, another type, or a repeat
            seen.add(completion.saga_id)
            if saga["status"] == "completed":
                continue
            if saga["status"] != "started":
                results[index] = ItemResult.refused(
                    SagaCompensated(
                        f"saga {saga['id']} was {saga['status']} ({saga['error'] or 'no reason recorded'}); "
                        "what it wrote was undone, so it cannot complete: start a new saga and upload again"
                    )
                )
                continue
            try:
                attrs = upload_attributes(saga, completion.attributes)
            except ArtStoreError as exc:
                results[index] = ItemResult.refused(exc)
                continue
            assert completion.attributes is not None
            uploads.append(_Upload(index, saga, attrs, completion.attributes, completion.request_id))
        catalogued = await store.insert_catalog_rows(
            connection, [catalog_values(u.attrs, u.document, u.saga["id"]) for u in uploads]
        )
        done: list[_Upload] = []
        for upload in uploads:
            if catalogued.get(upload.attrs.file_id) == upload.saga["id"]:
                done.append(upload)
            else:
                results[upload.index] = ItemResult.refused(
                    Conflict(f"file {upload.attrs.file_id} is already in the catalog; files are written once")
                )
        ids = [u.saga["id"] for u in done]
        await store.add_steps(
            connection,
            [{"saga_id": i, "step": "completed", "status": "done", "details": {"by": actor}} for i in ids],
        )
        await store.set_status_many(connection, ids, "completed")
        await self._ctx.audit.record_many(
            [upload_audit_entry(u.saga, u.attrs, actor, request_id=u.request_id) for u in done],
            connection=connection,
        )
        return done


def _summary(saga: dict[str, Any] | store.Row, status: str, created_at: Any) -> dict[str, Any]:
    """What a batch answers for a saga it wrote itself; GET /api/v1/sagas/{id} gives the whole record."""
    return {
        "id": str(saga["id"]),
        "type": saga["type"],
        "status": status,
        "file_id": str(saga["file_id"]),
        "storage_element_id": saga["storage_element_id"],
        "created_at": created_at.isoformat(),
    }
