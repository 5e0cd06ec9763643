"""The write-ahead log: JSON lines in numbered segments, fsynced before a caller may proceed.

Concurrent appends are batched into one write and one fsync (group commit), so the cost of durability is
shared by every transaction waiting at the same moment. Segments are filled with zeros when created, so
appending overwrites blocks that already exist and `fdatasync` flushes only data, without a filesystem
journal commit for a changed file size (the way PostgreSQL prepares its WAL). The oldest segments are
deleted once every transaction that began in them has ended, so the log does not grow without bound.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from artstore_storage.storage._durable import fsync_dir

Operation = Literal["create", "update", "delete"]
_SEGMENT_SUFFIX = ".wal"

Run = Callable[..., Awaitable[Any]]
"""Runs a blocking function off the loop: asyncio.to_thread, or the element's disk agent."""


@dataclass(frozen=True)
class WalRecord:
    tx: str
    type: Literal["begin", "commit", "abort"]
    op: Operation | None = None
    file_id: str | None = None
    saga_id: str | None = None
    before: dict[str, Any] | None = None

    def encode(self) -> bytes:
        body = {k: v for k, v in self.__dict__.items() if v is not None}
        body["ts"] = datetime.now(UTC).isoformat()
        return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def read_unfinished(directory: Path) -> list[WalRecord]:
    """Begin records without a matching commit or abort, in log order. A torn last line is ignored."""
    begun: dict[str, WalRecord] = {}
    ended: set[str] = set()
    for segment in sorted(directory.glob(f"*{_SEGMENT_SUFFIX}")):
        for line in segment.read_bytes().rstrip(b"\0").splitlines():
            try:
                raw = json.loads(line)
                record = WalRecord(
                    tx=raw["tx"],
                    type=raw["type"],
                    op=raw.get("op"),
                    file_id=raw.get("file_id"),
                    saga_id=raw.get("saga_id"),
                    before=raw.get("before"),
                )
            except (ValueError, KeyError, TypeError):
                continue  # a record cut short by a crash was never acknowledged to anyone
            if record.type == "begin":
                begun[record.tx] = record
            else:
                ended.add(record.tx)
    return [record for tx, record in begun.items() if tx not in ended]


@dataclass
class _Append:
    """A record waiting for the next batch, the caller's future and its check, if any."""

    record: WalRecord
    future: asyncio.Future[None]
    precondition: Callable[[], None] | None = None


@dataclass
class _Segment:
    number: int
    path: Path
    open_transactions: set[str] = field(default_factory=set)


class WriteAheadLog:
    def __init__(self, directory: Path, segment_bytes: int, run: Run = asyncio.to_thread) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._run = run
        self._segments: dict[int, _Segment] = {}
        self._tx_segment: dict[str, int] = {}
        self._current: _Segment | None = None
        self._offset = 0
        self._pending: list[_Append] = []
        self._flushing = False

    def start_fresh(self) -> None:
        """After recovery: every old transaction is resolved, so old segments go and a new one starts."""
        old = sorted(self.directory.glob(f"*{_SEGMENT_SUFFIX}"))
        last = int(old[-1].stem) if old else 0
        self._open_segment(last + 1)
        for segment in old:
            segment.unlink()
        fsync_dir(self.directory)

    async def close(self) -> None:
        await self._run(_forget_segment, self.directory)

    async def begin(
        self,
        op: Operation,
        file_id: str,
        saga_id: str | None = None,
        before: dict[str, Any] | None = None,
        *,
        precondition: Callable[[], None] | None = None,
    ) -> WalRecord:
        """Append a transaction's intent durably; the record is what recovery would undo.

        `precondition`, a picklable blocking check that raises to refuse, runs where the batch is written,
        just before it (one hand-off for both); when it raises, nothing is written and its exception is
        raised here.
        """
        record = WalRecord(f"{random.getrandbits(128):032x}", "begin", op, file_id, saga_id, before)
        await self._append(record, precondition)
        return record

    async def commit(self, txid: str) -> None:
        await self._append(WalRecord(txid, "commit"))

    async def abort(self, txid: str) -> None:
        await self._append(WalRecord(txid, "abort"))

    async def _append(self, record: WalRecord, precondition: Callable[[], None] | None = None) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Append(record, future, precondition))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    number, refusals = await self._write_batch(batch)
                except Exception as exc:
                    for entry in batch:
                        if not entry.future.done():
                            entry.future.set_exception(exc)
                    continue
                written = [e.record for e, refused in zip(batch, refusals, strict=True) if refused is None]
                self._track(number, written)
                for entry, refused in zip(batch, refusals, strict=True):
                    if entry.future.done():
                        continue
                    if refused is None:
                        entry.future.set_result(None)
                    else:
                        entry.future.set_exception(refused)
                if self._oldest_is_retired():
                    await asyncio.to_thread(self._delete_retired)
        finally:
            self._flushing = False

    async def _write_batch(self, batch: list[_Append]) -> tuple[int, list[Exception | None]]:
        assert self._current is not None, "start_fresh() first"
        lines = [entry.record.encode() for entry in batch]
        if self._offset > 0 and self._offset + sum(map(len, lines)) > self.segment_bytes:
            await asyncio.to_thread(self._open_segment, self._current.number + 1)
        segment = self._current
        refusals, written = await self._run(
            _append,
            segment.path,
            self._offset,
            [(entry.precondition, line) for entry, line in zip(batch, lines, strict=True)],
            self.segment_bytes,
        )
        self._offset += written
        return segment.number, refusals

    def _track(self, number: int, records: list[WalRecord]) -> None:
        for record in records:
            if record.type == "begin":
                self._segments[number].open_transactions.add(record.tx)
                self._tx_segment[record.tx] = number
            else:
                began_in = self._tx_segment.pop(record.tx, None)
                if began_in is not None:
                    self._segments[began_in].open_transactions.discard(record.tx)

    def _oldest_is_retired(self) -> bool:
        # Checked here, on the loop, so that the next batch does not wait for a worker thread to find
        # nothing to delete: only the oldest segment can go first.
        oldest = self._segments[min(self._segments)]
        return oldest is not self._current and not oldest.open_transactions

    def _delete_retired(self) -> None:
        # Only a prefix of the log may go. A later segment can hold the commit or abort of a transaction
        # that began in an earlier segment still kept for another open transaction; dropping that end
        # record would make recovery roll back an acknowledged write. Each unlink is made durable before
        # the next for the same reason.
        current = self._current.number if self._current else -1
        for number in sorted(self._segments):
            segment = self._segments[number]
            if number == current or segment.open_transactions:
                break
            segment.path.unlink(missing_ok=True)
            fsync_dir(self.directory)
            del self._segments[number]

    def _open_segment(self, number: int) -> None:
        path = self.directory / f"{number:016d}{_SEGMENT_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            # Zeros, not fallocate: ext4 would keep fallocated blocks "unwritten" and turn each first
            # write into a metadata change. Recovery skips the zero-filled tail like any torn line.
            zeros = bytes(1 << 20)
            remaining = self.segment_bytes
            while remaining > 0:
                remaining -= os.write(fd, zeros[: min(len(zeros), remaining)])
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.directory)
        self._offset = 0
        self._current = _Segment(number, path)
        self._segments[number] = self._current


# -- where the batches are written (a worker thread or the disk agent, which keeps the segment open) ----

_segment_fds: dict[Path, tuple[Path, int]] = {}  # log directory -> (segment, descriptor)


def _append(
    segment: Path, offset: int, entries: list[tuple[Callable[[], None] | None, bytes]], segment_bytes: int
) -> tuple[list[Exception | None], int]:
    """Check each entry's precondition, write the lines that pass at `offset` and make them durable."""
    refusals: list[Exception | None] = []
    lines = []
    for precondition, line in entries:
        try:
            if precondition is not None:
                precondition()
        except Exception as exc:
            refusals.append(exc)
        else:
            refusals.append(None)
            lines.append(line)
    if not lines:
        return refusals, 0
    data = b"".join(lines)
    fd = _descriptor(segment)
    os.pwrite(fd, data, offset)
    if offset + len(data) > segment_bytes:
        os.fsync(fd)  # a batch larger than a segment grew the file: its size must be durable too
    else:
        os.fdatasync(fd)
    return refusals, len(data)


def _descriptor(segment: Path) -> int:
    current = _segment_fds.get(segment.parent)
    if current is not None and current[0] == segment:
        return current[1]
    _forget_segment(segment.parent)
    fd = os.open(segment, os.O_WRONLY)
    _segment_fds[segment.parent] = (segment, fd)
    return fd


def _forget_segment(directory: Path) -> None:
    current = _segment_fds.pop(directory, None)
    if current is not None:
        os.close(current[1])
