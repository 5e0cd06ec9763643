"""The append-only audit log: every record carries the hash of the one before it and an HMAC signature.

Records are chained in id order. Appending takes a transaction-scoped advisory lock, so concurrent writers
(several admin processes included) line up and the chain never forks; the lock is released with the
caller's transaction, so an event recorded inside a business transaction lands or vanishes with it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from artstore_admin.repositories.tables import audit_log
from artstore_common.logging import current_request_id

GENESIS = "0" * 64
CHAIN_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext('artstore-audit-chain'))"
_CHAIN_LOCK = text(CHAIN_LOCK_SQL)


@dataclass(frozen=True)
class AuditEntry:
    action: str
    outcome: str = "success"
    actor: str | None = None
    subject: str | None = None
    details: dict[str, Any] | None = None
    service: str = "admin"
    request_id: str | None = None  # the request that caused it, when not the one being served


@dataclass(frozen=True)
class BrokenLink:
    record_id: int
    reason: str


def _canonical(row: dict[str, Any]) -> bytes:
    fields = {
        "id": row["id"],
        "occurred_at": row["occurred_at"].astimezone(UTC).isoformat(),
        "action": row["action"],
        "outcome": row["outcome"],
        "actor": row["actor"],
        "subject": row["subject"],
        "service": row["service"],
        "request_id": row["request_id"],
        "details": row["details"],
        "prev_hash": row["prev_hash"],
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class AuditLog:
    def __init__(self, engine: AsyncEngine, signing_key: bytes) -> None:
        self._engine = engine
        self._key = signing_key
        # The head as this process's last saga batch left it, while nothing it knows of has appended since
        # (see batch_head): a batch then chains on without reading the head again.
        self._known_head: tuple[int, str] | None = None

    def _sign(self, digest: str) -> str:
        return hmac.new(self._key, digest.encode(), hashlib.sha256).hexdigest()

    async def record(
        self,
        action: str,
        *,
        outcome: str = "success",
        actor: str | None = None,
        subject: str | None = None,
        details: dict[str, Any] | None = None,
        service: str = "admin",
        connection: AsyncConnection | None = None,
    ) -> int:
        """Append one record; inside `connection`'s transaction when given, else in a transaction of its own."""
        entry = AuditEntry(
            action, outcome=outcome, actor=actor, subject=subject, details=details, service=service
        )
        if connection is not None:
            return (await self.record_many([entry], connection=connection))[0]
        async with self._engine.begin() as own:
            return (await self.record_many([entry], connection=own))[0]

    async def record_many(self, entries: list[AuditEntry], *, connection: AsyncConnection) -> list[int]:
        """Append records in order under one hold of the chain lock; their ids."""
        if not entries:
            return []
        self._known_head = None  # the next batch reads the head again
        rows = self.seal(entries, await self.lock_head(connection))
        await connection.execute(insert(audit_log), rows)
        return [int(row["id"]) for row in rows]

    async def lock_head(self, connection: AsyncConnection, *, locked: bool = False) -> tuple[int, str]:
        """Take the chain's lock for `connection`'s transaction (unless an earlier statement of it ran
        CHAIN_LOCK_SQL: `locked`); the next record's id and prev_hash."""
        if not locked:
            await connection.execute(_CHAIN_LOCK)
        last = (
            await connection.execute(
                select(audit_log.c.id, audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)
            )
        ).first()
        return (1, GENESIS) if last is None else (last.id + 1, last.hash)

    async def batch_head(self, connection: AsyncConnection, *, locked: bool) -> tuple[int, str]:
        """lock_head for a saga batch, without reading the head when this process's last batch made it.

        Should anyone have appended since (another admin process, or a single-path append of this one that
        ran beside the batch), the batch's first record takes an id that exists: the statement fails on the
        primary key and the batch's items take the single path (SagaBatches.run), so the chain stays whole
        either way. Until the caller reports the batch committed (batch_committed) the head counts as
        unknown, so the next batch reads it.
        """
        head = self.take_known_head()
        if head is None:
            return await self.lock_head(connection, locked=locked)
        if not locked:
            await connection.execute(_CHAIN_LOCK)
        return head

    def take_known_head(self) -> tuple[int, str] | None:
        """The head this process's last batch left, if nothing it knows of has appended since; it counts as
        unknown from now until batch_committed. None: read the head under the lock (lock_head)."""
        head, self._known_head = self._known_head, None
        return head

    def batch_committed(self, records: list[dict[str, Any]]) -> None:
        """The batch that sealed `records` (with batch_head's answer) has committed."""
        if records:
            self._known_head = (int(records[-1]["id"]) + 1, str(records[-1]["hash"]))

    def seal(self, entries: list[AuditEntry], head: tuple[int, str]) -> list[dict[str, Any]]:
        """The rows of `entries`, chained after `head` (from lock_head) and signed, for audit_log."""
        next_id, prev_hash = head
        request_id = current_request_id()
        rows: list[dict[str, Any]] = []
        for entry in entries:
            row: dict[str, Any] = {
                "id": next_id,
                # Microseconds survive the round trip through PostgreSQL, so the hash recomputes exactly.
                "occurred_at": datetime.now(UTC),
                "action": entry.action,
                "outcome": entry.outcome,
                "actor": entry.actor,
                "subject": entry.subject,
                "service": entry.service,
                "request_id": entry.request_id or request_id,
                "details": json.loads(json.dumps(entry.details or {}, default=str)),
                "prev_hash": prev_hash,
            }
            row["hash"] = hashlib.sha256(_canonical(row)).hexdigest()
            row["signature"] = self._sign(row["hash"])
            rows.append(row)
            next_id, prev_hash = next_id + 1, row["hash"]
        return rows

    async def verify(self) -> tuple[int, BrokenLink | None]:
        """Walk the chain in order; return how many records were checked and the first broken link."""
        checked = 0
        expected_prev = GENESIS
        expected_id = 1
        async with self._engine.connect() as connection:
            result = await connection.stream(select(audit_log).order_by(audit_log.c.id))
            async for record in result.mappings():
                row = dict(record)
                checked += 1
                if row["id"] != expected_id:
                    # The first record that no longer links up is the one after the gap.
                    reason = (
                        f"record {expected_id} before it is missing"
                        if row["id"] == expected_id + 1
                        else f"records {expected_id} to {row['id'] - 1} before it are missing"
                    )
                    return checked, BrokenLink(row["id"], reason)
                if row["prev_hash"] != expected_prev:
                    return checked, BrokenLink(row["id"], "its prev_hash does not match the record before it")
                digest = hashlib.sha256(_canonical(row)).hexdigest()
                if digest != row["hash"]:
                    return checked, BrokenLink(row["id"], "its content does not match its hash")
                if not hmac.compare_digest(self._sign(digest), row["signature"]):
                    return checked, BrokenLink(row["id"], "its signature is not valid")
                expected_prev = row["hash"]
                expected_id += 1
        return checked, None

    async def count(self) -> int:
        async with self._engine.connect() as connection:
            return int((await connection.execute(select(func.count()).select_from(audit_log))).scalar_one())
