"""Many sagas started and completed in one request: the ingester's uploads coalesced (DESIGN section 4).

Each item means exactly what the single endpoint means and gets the answer the single endpoint would give
(status and saga, or a problem), but the common case costs one statement for the whole batch: upload sagas
without an idempotency key are started, and completions of started upload sagas catalog their files,
record their steps and append their audit records (one hold of the audit chain's lock), chained on the head
this admin's previous batch left. Without that head (the first batch, or after another append) the batch
runs as statements in one transaction that reads the head under the lock; the one statement falls back to
that too when it fails and so changes nothing (a stale head, an item that does not apply). Anything else
(keys, updates, deletes, a saga no longer started, a file already catalogued) is answered by the
single-saga path, item by item: when the batch's statements find such a completion, its transaction is
undone and every item of it takes that path.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError, IntegrityError

from artstore_admin.audit.log import AuditEntry
from artstore_admin.context import AdminContext
from artstore_admin.sagas import store
from artstore_admin.sagas.catalog import FileAttributes, catalog_values, parse_attributes
from artstore_admin.sagas.metrics import SAGA_OUTCOMES
from artstore_admin.sagas.service import (
    NewSaga,
    SagaService,
    abandoned_after_seconds,
    catalog_event,
    payload_json,
    upload_audit_entry,
)
from artstore_common.background import Detached
from artstore_common.errors import ArtStoreError, ValidationFailed, database_unavailable, problem_body
from artstore_common.logging import request_id_bound

_log = logging.getLogger("artstore.admin.sagas")


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


@dataclass(frozen=True)
class _Upload:
    """A completion the batch statement can take: what its saga must be, and what to catalog."""

    index: int
    saga: dict[str, Any]  # id, type, file_id, storage_element_id: the saga as it must stand
    attrs: FileAttributes
    document: dict[str, Any]
    request_id: str | None


class _NotAllCompleted(Exception):
    """A completion in the batch needs the single path's answer."""


class SagaBatches:
    def __init__(
        self, ctx: AdminContext, sagas: SagaService, element_changed: Callable[[str], None] = lambda _: None
    ) -> None:
        self._ctx = ctx
        self._sagas = sagas
        self._element_changed = element_changed
        self._publishing = Detached()
        # For a batch in one statement: no BEGIN and no COMMIT round trips, the statement is its transaction.
        self._autocommit = ctx.engine.execution_options(isolation_level="AUTOCOMMIT")

    async def run(
        self, news: list[NewSaga], completions: list[Completion], actor: str
    ) -> tuple[list[ItemResult], list[ItemResult]]:
        """Start `news` and complete `completions`: the answers to each, in their order."""
        started: dict[int, ItemResult] = {}
        completed: dict[int, ItemResult] = {}
        # The starts one statement can take, with their payloads as JSON (one too big takes the single path).
        plain = {
            i: (new, payload)
            for i, new in enumerate(news)
            if new.type == "upload"
            and new.idempotency_key is None
            and new.storage_element_id is not None
            and (payload := payload_json(new.payload)) is not None
        }
        uploads = _uploads(completions, completed)
        if plain or uploads:
            answered = await self._in_one_statement(plain, uploads, actor)
            if answered is None:
                answered = await self._in_a_transaction(plain, uploads, actor)
            if answered is None:
                uploads = []
            else:
                started.update(answered[0])
                completed.update(answered[1])
        if uploads:
            SAGA_OUTCOMES.labels("upload", "completed").inc(len(uploads))
            self._announce([catalog_event("created", u.saga, attributes=u.document) for u in uploads])
            for element_id in {u.attrs.storage_element_id for u in uploads}:
                self._element_changed(element_id)
        for index, new in enumerate(news):
            if index not in started:
                started[index] = await self._one(self._start_one(new, actor))
        for index, completion in enumerate(completions):
            if index not in completed:
                completed[index] = await self._one(self._complete_one(completion, actor))
        return [started[i] for i in range(len(news))], [completed[i] for i in range(len(completions))]

    async def _in_one_statement(
        self, plain: dict[int, tuple[NewSaga, str]], uploads: list[_Upload], actor: str
    ) -> _Answered | None:
        """The usual way: the whole batch as one statement. None when it cannot be (the audit chain's head is
        not known without reading it) or failed for a reason of its own (_in_a_transaction then tries)."""
        audit = self._ctx.audit
        head = audit.take_known_head() if uploads else None
        if uploads and head is None:
            return None
        sagas = _new_sagas(plain)
        records = audit.seal(self._audit_entries(uploads, actor), head) if head is not None else []
        try:
            async with self._autocommit.connect() as connection:
                if uploads:
                    created, done = await store.whole_batch(
                        connection, list(sagas.values()), _catalog_rows(uploads), records, actor
                    )
                else:
                    created, done = await store.start_uploads(connection, list(sagas.values()), actor), {}
        except DBAPIError as exc:
            if database_unavailable(exc) and not _single_path_answers(exc):
                raise
            _log.info(
                "a saga batch (%d starts, %d completions) runs as a transaction instead of one statement: %s",
                len(plain),
                len(uploads),
                _first_line(exc),
            )
            return None
        audit.batch_committed(records)
        return (
            _start_results(sagas, created, self._ctx.settings.saga_timeout_seconds),
            _completion_results(uploads, done),
        )

    async def _in_a_transaction(
        self, plain: dict[int, tuple[NewSaga, str]], uploads: list[_Upload], actor: str
    ) -> _Answered | None:
        """The batch as statements in one transaction, reading the audit chain's head under its lock. None
        when its items must take the single path, which gives each its exact answer."""
        audit = self._ctx.audit
        sagas = _new_sagas(plain)
        records: list[dict[str, Any]] = []
        try:
            async with self._ctx.engine.begin() as connection:
                # The start statement takes the audit chain's lock when completions follow.
                created = (
                    await store.start_uploads(
                        connection, list(sagas.values()), actor, lock_audit_chain=bool(uploads)
                    )
                    if sagas
                    else {}
                )
                done: dict[uuid.UUID, Any] = {}
                if uploads:
                    # Last before COMMIT: the chain's lock is held from here to the end of the transaction.
                    head = await audit.batch_head(connection, locked=bool(sagas))
                    records = audit.seal(self._audit_entries(uploads, actor), head)
                    done = await store.complete_uploads(connection, _catalog_rows(uploads), records, actor)
                    if len(done) != len(uploads):
                        raise _NotAllCompleted
        except (_NotAllCompleted, DBAPIError) as exc:
            if isinstance(exc, DBAPIError) and not _single_path_answers(exc):
                raise
            _log.info(
                "a saga batch (%d starts, %d completions) is answered item by item: %s",
                len(plain),
                len(uploads),
                _first_line(exc) if isinstance(exc, DBAPIError) else "a completion needs it",
            )
            return None
        audit.batch_committed(records)
        return (
            _start_results(sagas, created, self._ctx.settings.saga_timeout_seconds),
            _completion_results(uploads, done),
        )

    @staticmethod
    def _audit_entries(uploads: list[_Upload], actor: str) -> list[AuditEntry]:
        return [
            upload_audit_entry(u.saga["id"], u.attrs, via=actor, request_id=u.request_id) for u in uploads
        ]

    async def _start_one(self, new: NewSaga, actor: str) -> ItemResult:
        saga, created = await self._sagas.start(new, actor)
        return ItemResult(201 if created else 200, saga)

    async def _complete_one(self, completion: Completion, actor: str) -> ItemResult:
        # Its audit record and log lines name the request the item was sent for, not the batch's.
        with request_id_bound(completion.request_id):
            return ItemResult(
                200, await self._sagas.complete(completion.saga_id, completion.attributes, actor)
            )

    @staticmethod
    async def _one(call: Awaitable[ItemResult]) -> ItemResult:
        try:
            return await call
        except ArtStoreError as exc:
            return ItemResult.refused(exc)

    def _announce(self, events: list[dict[str, Any]]) -> None:
        """Publish after answering: the events are best effort and the ingesters wait for the answer."""
        self._publishing.start(self._sagas.publish(events), "catalog-events")


_Answered = tuple[dict[int, ItemResult], dict[int, ItemResult]]


def _new_sagas(plain: dict[int, tuple[NewSaga, str]]) -> dict[int, dict[str, Any]]:
    """The rows of the upload sagas to start, by the index of their item."""
    return {
        index: {
            "id": uuid.uuid4(),
            "type": "upload",
            "file_id": new.file_id,
            "storage_element_id": new.storage_element_id,
            "payload": payload,
        }
        for index, (new, payload) in plain.items()
    }


def _start_results(
    sagas: dict[int, dict[str, Any]], created: dict[uuid.UUID, Any], saga_timeout: float
) -> dict[int, ItemResult]:
    started = abandoned_after_seconds(saga_timeout)
    results: dict[int, ItemResult] = {}
    for index, saga in sagas.items():
        if saga["id"] in created:
            results[index] = ItemResult(201, _summary(saga, "started", created[saga["id"]]) | started)
        else:
            results[index] = ItemResult.refused(
                ValidationFailed(
                    f"storage element '{saga['storage_element_id']}' is not registered; "
                    "register it with POST /api/v1/storage-elements first"
                )
            )
    return results


def _completion_results(uploads: list[_Upload], done: dict[uuid.UUID, Any]) -> dict[int, ItemResult]:
    return {u.index: ItemResult(200, _summary(u.saga, "completed", done[u.saga["id"]])) for u in uploads}


def _catalog_rows(uploads: list[_Upload]) -> list[dict[str, Any]]:
    return [catalog_values(u.attrs, u.document, u.saga["id"]) for u in uploads]


def _first_line(exc: DBAPIError) -> str:
    return str(exc.orig).split("\n")[0][:300]


def _single_path_answers(exc: DBAPIError) -> bool:
    """A file already catalogued fails the completion statement, and so does an audit record chained on a
    head that another admin process has moved since (AuditLog.batch_head); and the batch takes the audit
    chain's lock before its sagas' rows, the single path after its saga's row, so a single-path settlement
    of a saga this batch completes can deadlock with it (PostgreSQL then undoes one of the two). Either way
    the batch's items take the single path, which gives each its exact answer."""
    deadlock = str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)) == "40P01"
    return deadlock or isinstance(exc, IntegrityError)


def _uploads(completions: list[Completion], refused: dict[int, ItemResult]) -> list[_Upload]:
    """The completions the batch statement can take; what attr.json alone refuses goes into `refused`."""
    uploads: list[_Upload] = []
    seen: set[uuid.UUID] = set()
    for index, completion in enumerate(completions):
        if completion.saga_id in seen or completion.attributes is None:
            continue  # a repeat, or not an upload: the single path answers
        seen.add(completion.saga_id)
        try:
            attrs = parse_attributes(completion.attributes)
        except ArtStoreError as exc:
            refused[index] = ItemResult.refused(exc)
            continue
        if attrs.created_by is None or (
            attrs.saga_id is not None and attrs.saga_id != str(completion.saga_id)
        ):
            continue  # the single path reads who started the saga, and says which saga wrote the file
        saga = {
            "id": completion.saga_id,
            "type": "upload",
            "file_id": attrs.file_id,
            "storage_element_id": attrs.storage_element_id,
        }
        uploads.append(_Upload(index, saga, attrs, completion.attributes, completion.request_id))
    return uploads


def _summary(saga: dict[str, Any], status: str, created_at: Any) -> dict[str, Any]:
    """What a batch answers for a saga it wrote itself; GET /api/v1/sagas/{id} gives the whole record."""
    return {
        "id": str(saga["id"]),
        "type": saga["type"],
        "status": status,
        "file_id": str(saga["file_id"]),
        "storage_element_id": saga["storage_element_id"],
        "created_at": created_at.isoformat(),
    }
