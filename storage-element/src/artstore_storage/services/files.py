"""Files on one element: the write protocol of DESIGN section 3, reads, updates, deletes, compensation."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from prometheus_client import Histogram
from sqlalchemy.ext.asyncio import AsyncEngine

from artstore_common.errors import (
    ChecksumMismatch,
    Conflict,
    NotFound,
    PayloadTooLarge,
    SagaCompensated,
)
from artstore_storage.metrics import OPERATIONS, UPLOAD_BYTES, WRITE_STEP_SECONDS
from artstore_storage.repositories import index
from artstore_storage.services._db import IndexWriter, index_transaction
from artstore_storage.services.announcer import Announcer
from artstore_storage.storage._durable import (
    fsync_dir,
    replace_durably,
)
from artstore_storage.storage.agent import DiskAgent
from artstore_storage.storage.attributes import (
    AttributesPatch,
    FileAttributes,
    TornAttributes,
    UserAttributes,
    read_attributes,
    utcnow,
)
from artstore_storage.storage.capacity import Capacity, Reservation
from artstore_storage.storage.layout import Layout
from artstore_storage.storage.modes import Operation, check_allowed
from artstore_storage.storage.placing import Placement, place, refuse_existing
from artstore_storage.storage.recovery import undo
from artstore_storage.storage.shards import ShardDirectories
from artstore_storage.storage.staging import StagedFile
from artstore_storage.storage.wal import WalRecord, WriteAheadLog

_WRITE_STEPS = ("wal_begin", "receive", "place", "index", "wal_commit")


class _StepClock:
    """Times the steps of one upload into WRITE_STEP_SECONDS, each from the end of the one before."""

    def __init__(self, timers: dict[str, Histogram]) -> None:
        self._timers = timers
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self._timers[step].observe(now - self._last)
        self._last = now


@dataclass(frozen=True)
class NewFile:
    file_id: uuid.UUID
    filename: str
    content_type: str
    attributes: UserAttributes
    created_by: str
    saga_id: str | None
    content_length: int | None
    expected_sha256: str | None


class FileService:
    def __init__(
        self,
        *,
        element_id: str,
        layout: Layout,
        wal: WriteAheadLog,
        capacity: Capacity,
        engine: AsyncEngine,
        index_writer: IndexWriter,
        announcer: Announcer,
        max_file_size: int,
        chunk_bytes: int,
        agent: DiskAgent,
    ) -> None:
        self.element_id = element_id
        # Labelled once here rather than per upload: a label lookup takes the metric's lock.
        self._step_timers = {step: WRITE_STEP_SECONDS.labels(element_id, step) for step in _WRITE_STEPS}
        self.layout = layout
        self._shards = ShardDirectories(layout)
        self.wal = wal
        self.capacity = capacity
        self.engine = engine
        self.index_writer = index_writer
        self.announcer = announcer
        self.max_file_size = max_file_size
        self.chunk_bytes = chunk_bytes
        self._agent = agent
        self.file_count = 0
        self.mode = "rw"
        self._busy: set[uuid.UUID] = set()
        self._writes_in_flight = 0
        self._writes_drained = asyncio.Event()
        self._writes_drained.set()
        self._compensated: deque[str] = deque(maxlen=10_000)

    # -- reads ---------------------------------------------------------------------------------------

    async def attributes(self, file_id: uuid.UUID) -> FileAttributes:
        check_allowed(self.mode, Operation.READ_METADATA)
        return await asyncio.to_thread(self._read_attributes, file_id)

    async def content(self, file_id: uuid.UUID) -> tuple[FileAttributes, Path]:
        check_allowed(self.mode, Operation.READ_CONTENT)
        attrs = await asyncio.to_thread(self._read_attributes, file_id)
        return attrs, self.layout.data_path(file_id)

    def _read_attributes(self, file_id: uuid.UUID) -> FileAttributes:
        # attr.json is written last and removed first, so its presence means the bytes are in place.
        try:
            attrs = read_attributes(self.layout.attr_path(file_id))
        except FileNotFoundError:
            raise NotFound(f"no file {file_id} on element {self.element_id}") from None
        except TornAttributes as exc:
            raise Conflict(f"the attributes of {file_id} are unreadable; run reconcile ({exc})") from None
        if not self.layout.data_path(file_id).exists():
            raise NotFound(f"the bytes of {file_id} are missing on element {self.element_id}; run reconcile")
        return attrs

    # -- create --------------------------------------------------------------------------------------

    async def create(self, new: NewFile, body: AsyncIterator[bytes]) -> FileAttributes:
        check_allowed(self.mode, Operation.CREATE)
        if new.content_length is not None and new.content_length > self.max_file_size:
            raise PayloadTooLarge(self._too_large(new.content_length))
        if new.saga_id is not None and new.saga_id in self._compensated:
            raise SagaCompensated(f"saga {new.saga_id} was compensated; start a new saga")
        async with self._exclusive(new.file_id), self._tracked_write():
            clock = _StepClock(self._step_timers)
            reservation = Reservation(self.capacity)
            try:
                attrs = await self._create_transaction(new, body, reservation, clock)
                reservation.settle(attrs.size_bytes)
            finally:
                reservation.release()
        self.file_count += 1
        UPLOAD_BYTES.labels(self.element_id).inc(attrs.size_bytes)
        OPERATIONS.labels(self.element_id, "create", "ok").inc()
        return attrs

    async def _create_transaction(
        self, new: NewFile, body: AsyncIterator[bytes], reservation: Reservation, clock: _StepClock
    ) -> FileAttributes:
        # Step 1: the intent is durable before any byte lands, so recovery knows what to undo. The id must
        # be free before the record is written: recovery's undo of this create would delete what is there.
        record = await self.wal.begin(
            "create",
            str(new.file_id),
            new.saga_id,
            precondition=partial(
                refuse_existing,
                str(new.file_id),
                self.layout.attr_name(new.file_id),
                self.layout.data_name(new.file_id),
            ),
        )
        clock.lap("wal_begin")
        staged = StagedFile(self.layout.temp_name(record.tx, "data"), self.chunk_bytes)
        placed = indexed = False
        try:
            # Step 2: stream into tmp/, hashing as bytes arrive; capacity is reserved before bytes land
            # (after step 1, so that a PUT to an existing id is 409 whatever its length).
            reservation.ensure(new.content_length or 0)
            async for chunk in body:
                if not chunk:
                    continue
                grown = staged.size + len(chunk)
                if grown > self.max_file_size:
                    raise PayloadTooLarge(self._too_large(grown))
                reservation.ensure(grown)
                await staged.write(chunk)
            await staged.drain()
            clock.lap("receive")
            tail, sha256 = await staged.finish()
            if new.expected_sha256 is not None and new.expected_sha256 != sha256:
                raise ChecksumMismatch(
                    f"the body's SHA-256 is {sha256} but the client sent {new.expected_sha256}; nothing stored"
                )
            attrs = self._attributes_for(new, staged.size, sha256)
            # Steps 3 and 4 in one call to the disk agent: the data durable, then renamed into place.
            placed = True
            await self._agent.call(
                place,
                Placement(
                    data_temp=staged.path,
                    tail=tail,
                    attr_temp=self.layout.temp_name(record.tx, "attr"),
                    attributes=attrs.to_json_bytes(),
                    data_final=self.layout.data_name(new.file_id),
                    attr_final=self.layout.attr_name(new.file_id),
                    sync_dirs=self._shards.to_sync(new.file_id),
                ),
            )
            self._shards.settle(new.file_id)
            clock.lap("place")
            # Step 5: the index row.
            await self.index_writer.upsert(attrs)
            indexed = True
            clock.lap("index")
            if new.saga_id is not None and new.saga_id in self._compensated:
                raise SagaCompensated(
                    f"saga {new.saga_id} was compensated while this upload ran; nothing stored"
                )
            # Step 6: tell others (best effort, in the background).
            self.announcer.file_event("created", {"file_id": attrs.file_id, "size_bytes": attrs.size_bytes})
            # Step 7: commit; only now may the caller answer 201.
            await self.wal.commit(record.tx)
            clock.lap("wal_commit")
            return attrs
        except BaseException:
            await staged.discard()
            await self._roll_back(record, undo_disk=placed, unindex=indexed)
            OPERATIONS.labels(self.element_id, "create", "rolled_back").inc()
            raise

    def _attributes_for(self, new: NewFile, size: int, sha256: str) -> FileAttributes:
        now = utcnow()
        return FileAttributes(
            file_id=str(new.file_id),
            original_filename=new.filename,
            content_type=new.content_type,
            size_bytes=size,
            sha256=sha256,
            storage_element_id=self.element_id,
            created_at=now,
            updated_at=now,
            created_by=new.created_by,
            description=new.attributes.description,
            tags=new.attributes.tags,
            metadata=new.attributes.metadata,
            retention=new.attributes.retention,
            saga_id=new.saga_id,
        )

    def _too_large(self, size: int) -> str:
        return f"the body has {size} bytes or more; this element takes at most {self.max_file_size} per file"

    # -- update and delete ---------------------------------------------------------------------------

    async def update(self, file_id: uuid.UUID, patch: AttributesPatch) -> FileAttributes:
        check_allowed(self.mode, Operation.UPDATE_METADATA)
        async with self._exclusive(file_id), self._tracked_write():
            before = await asyncio.to_thread(self._read_attributes, file_id)
            after = before.with_patch(patch)
            attr_bytes = after.to_json_bytes()
            record = await self.wal.begin(
                "update", str(file_id), before.saga_id, before.model_dump(mode="json")
            )
            indexed = False
            try:
                await asyncio.to_thread(
                    replace_durably,
                    self.layout.temp_path(record.tx, "attr"),
                    self.layout.attr_path(file_id),
                    attr_bytes,
                )
                await self.index_writer.upsert(after)
                indexed = True
                self.announcer.file_event("updated", {"file_id": str(file_id)})
                await self.wal.commit(record.tx)
            except BaseException:
                await self._roll_back(record, undo_disk=True, unindex=indexed)
                raise
        OPERATIONS.labels(self.element_id, "update", "ok").inc()
        return after

    async def delete(self, file_id: uuid.UUID) -> FileAttributes:
        check_allowed(self.mode, Operation.DELETE)
        return await self._delete(file_id, reason="deleted")

    async def _delete(self, file_id: uuid.UUID, *, reason: str) -> FileAttributes:
        async with self._exclusive(file_id), self._tracked_write():
            before = await asyncio.to_thread(self._read_attributes, file_id)
            record = await self.wal.begin(
                "delete", str(file_id), before.saga_id, before.model_dump(mode="json")
            )
            indexed = False
            try:
                await asyncio.to_thread(self._move_to_trash, record.tx, file_id)
                async with index_transaction(self.engine) as connection:
                    await index.remove(connection, file_id)
                indexed = True
                self.announcer.file_event(reason, {"file_id": str(file_id)})
                await self.wal.commit(record.tx)
            except BaseException:
                await self._roll_back(record, undo_disk=True, unindex=indexed)
                raise
            await asyncio.to_thread(self._empty_trash, record.tx)
        self.capacity.freed(before.size_bytes)
        self.file_count = max(self.file_count - 1, 0)
        OPERATIONS.labels(self.element_id, "delete", "ok").inc()
        return before

    def _move_to_trash(self, txid: str, file_id: uuid.UUID) -> None:
        # attr.json first: once it is gone the file is invisible, and its bytes follow.
        os.replace(self.layout.attr_path(file_id), self.layout.temp_path(txid, "del.attr"))
        os.replace(self.layout.data_path(file_id), self.layout.temp_path(txid, "del.bin"))
        fsync_dir(self.layout.shard(file_id))

    def _empty_trash(self, txid: str) -> None:
        for suffix in ("del.attr", "del.bin"):
            self.layout.temp_path(txid, suffix).unlink(missing_ok=True)

    async def compensate(self, saga_id: str) -> list[str]:
        """Undo whatever this saga stored here. Idempotent: a second call finds nothing left."""
        async with index_transaction(self.engine) as connection:
            file_ids = await index.ids_for_saga(connection, saga_id)
        if file_ids and self.mode == "ar":
            raise Conflict("the element is archived (sealed); its files can no longer be compensated")
        self._compensated.append(saga_id)
        removed = []
        for file_id in file_ids:
            try:
                await self._delete(file_id, reason="compensated")
            except NotFound:
                continue
            removed.append(str(file_id))
        return removed

    # -- shared machinery ----------------------------------------------------------------------------

    async def _roll_back(self, record: WalRecord, *, undo_disk: bool, unindex: bool) -> None:
        """Undo a failed transaction. If this fails too, the WAL keeps it open for recovery at start."""
        before = await asyncio.to_thread(undo, self.layout, record) if undo_disk else None
        if unindex:
            async with index_transaction(self.engine) as connection:
                await index.restore(connection, uuid.UUID(str(record.file_id)), before)
        await self.wal.abort(record.tx)

    @contextlib.asynccontextmanager
    async def _exclusive(self, file_id: uuid.UUID) -> AsyncIterator[None]:
        if file_id in self._busy:
            raise Conflict(f"another operation on {file_id} is in progress; retry when it finished")
        self._busy.add(file_id)
        try:
            yield
        finally:
            self._busy.discard(file_id)

    @contextlib.asynccontextmanager
    async def _tracked_write(self) -> AsyncIterator[None]:
        self._writes_in_flight += 1
        self._writes_drained.clear()
        try:
            yield
        finally:
            self._writes_in_flight -= 1
            if self._writes_in_flight == 0:
                self._writes_drained.set()

    async def drain_writes(self) -> None:
        await self._writes_drained.wait()

    @property
    def busy_file_ids(self) -> frozenset[uuid.UUID]:
        """Files with an operation in progress: half-written on purpose, not damaged."""
        return frozenset(self._busy)

    def recount(self, servable: dict[uuid.UUID, FileAttributes]) -> None:
        """Reset the stored-bytes and file counters from a scan of the disk."""
        self.capacity.used = sum(attrs.size_bytes for attrs in servable.values())
        self.file_count = len(servable)

    async def list_page(self, after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[dict[str, Any]]:
        async with index_transaction(self.engine) as connection:
            return await index.page(connection, after=after, limit=limit)
