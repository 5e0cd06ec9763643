"""SQL statements on the saga tables and the catalog. Flush, never commit: callers own the transaction."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import RowMapping, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from artstore_admin.audit.log import CHAIN_LOCK_SQL
from artstore_admin.repositories.tables import files, saga_steps, sagas, storage_elements

Row = RowMapping
# The types the saga service drives; mode changes (type mode_change) are the registry's, on the same tables.
SAGA_TYPES = ("upload", "update", "delete")


async def insert_saga(connection: AsyncConnection, values: dict[str, Any]) -> bool:
    """Insert a saga; False when its idempotency key is already taken (the caller then reads that one)."""
    statement = pg_insert(sagas).values(**values).on_conflict_do_nothing(index_elements=["idempotency_key"])
    result = await connection.execute(statement.returning(sagas.c.id))
    return result.first() is not None


async def by_idempotency_key(connection: AsyncConnection, key: str, *, lock: bool = False) -> Row | None:
    statement = select(sagas).where(sagas.c.idempotency_key == key)
    if lock:
        statement = statement.with_for_update()
    return (await connection.execute(statement)).mappings().first()


async def release_idempotency_key(connection: AsyncConnection, saga_id: uuid.UUID) -> None:
    await connection.execute(update(sagas).where(sagas.c.id == saga_id).values(idempotency_key=None))


async def touch(connection: AsyncConnection, saga_id: uuid.UUID) -> None:
    await connection.execute(update(sagas).where(sagas.c.id == saga_id).values(updated_at=func.now()))


async def get(connection: AsyncConnection, saga_id: uuid.UUID, *, lock: bool = False) -> Row | None:
    statement = select(sagas).where(sagas.c.id == saga_id)
    if lock:
        statement = statement.with_for_update()
    return (await connection.execute(statement)).mappings().first()


async def steps(connection: AsyncConnection, saga_id: uuid.UUID) -> list[Row]:
    statement = select(saga_steps).where(saga_steps.c.saga_id == saga_id).order_by(saga_steps.c.id)
    return list((await connection.execute(statement)).mappings())


async def add_step(
    connection: AsyncConnection, saga_id: uuid.UUID, step: str, status: str, details: dict[str, Any]
) -> None:
    await connection.execute(
        insert(saga_steps).values(saga_id=saga_id, step=step, status=status, details=details)
    )


async def set_status(
    connection: AsyncConnection,
    saga_id: uuid.UUID,
    status: str,
    *,
    error: str | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "updated_at": func.now()}
    if error is not None:
        values["error"] = error
    if payload is not None:
        values["payload"] = payload
    await connection.execute(update(sagas).where(sagas.c.id == saga_id).values(**values))


async def claim_stale(
    connection: AsyncConnection, *, started_before: timedelta, retry_after: timedelta, batch: int
) -> list[uuid.UUID]:
    """Claim sagas nobody finished: rows another admin holds are skipped, and the claim is a lease.

    Touching updated_at is the lease: once this transaction commits, other admins see the row as fresh
    and leave it alone until the lease runs out, even though the row lock itself is gone.
    """
    stale = sagas.c.type.in_(SAGA_TYPES) & or_(
        (sagas.c.status == "started") & (sagas.c.updated_at < func.now() - started_before),
        (sagas.c.status == "compensating") & (sagas.c.updated_at < func.now() - retry_after),
    )
    statement = (
        select(sagas.c.id)
        .where(stale)
        .order_by(sagas.c.updated_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    claimed = list((await connection.execute(statement)).scalars())
    if claimed:
        await connection.execute(update(sagas).where(sagas.c.id.in_(claimed)).values(updated_at=func.now()))
    return claimed


async def element_url(connection: AsyncConnection, element_id: str) -> str | None:
    statement = select(storage_elements.c.url).where(storage_elements.c.id == element_id)
    value = (await connection.execute(statement)).scalar_one_or_none()
    return None if value is None else str(value)


async def catalog_row(connection: AsyncConnection, file_id: uuid.UUID) -> Row | None:
    return (await connection.execute(select(files).where(files.c.file_id == file_id))).mappings().first()


async def insert_catalog_row(connection: AsyncConnection, values: dict[str, Any]) -> bool:
    """Insert a catalog row; False when the file id is already in the catalog."""
    statement = pg_insert(files).values(**values).on_conflict_do_nothing(index_elements=["file_id"])
    return (await connection.execute(statement.returning(files.c.file_id))).first() is not None


async def update_catalog_row(connection: AsyncConnection, values: dict[str, Any]) -> bool:
    """Replace the indexed fields of a catalog row; the upload's saga id stays. False when there is none."""
    changes = {k: v for k, v in values.items() if k not in ("file_id", "saga_id")}
    statement = (
        update(files).where(files.c.file_id == values["file_id"]).values(**changes, synced_at=func.now())
    )
    return bool((await connection.execute(statement.returning(files.c.file_id))).first())


async def remove_catalog_row(
    connection: AsyncConnection, file_id: uuid.UUID, *, saga_id: uuid.UUID | None = None
) -> bool:
    statement = delete(files).where(files.c.file_id == file_id)
    if saga_id is not None:
        # A compensation removes only the row its own saga wrote, never an older upload's.
        statement = statement.where(files.c.saga_id == saga_id)
    return bool((await connection.execute(statement.returning(files.c.file_id))).first())


# -- many upload sagas in one statement each (the batch endpoint) -----------------------------------------

# Upload sagas for registered elements, with their `started` steps.
_START_CTES = """
    wanted AS (
        SELECT * FROM unnest(
            CAST(:start_ids AS uuid[]), CAST(:start_file_ids AS uuid[]), CAST(:start_element_ids AS text[]),
            CAST(:start_payloads AS text[])
        ) AS w(id, file_id, storage_element_id, payload)
        WHERE w.storage_element_id IN (SELECT id FROM storage_elements)
    ), started AS (
        INSERT INTO sagas (id, type, status, file_id, storage_element_id, payload, created_by)
        SELECT id, 'upload', 'started', file_id, storage_element_id, CAST(payload AS jsonb), :actor FROM wanted
        RETURNING id, created_at
    ), start_steps AS (
        INSERT INTO saga_steps (saga_id, step, status, details)
        SELECT id, 'started', 'done', CAST(:details AS jsonb) FROM started
    )"""
# The rows written come back.
_START_UPLOADS_ALONE = text(f"WITH {_START_CTES} SELECT id, created_at FROM started")
# The same, and then the audit chain's lock for the completions that follow in the transaction: one round
# trip less, and the next statement, which reads the chain's head, starts after the lock was granted.
_START_UPLOADS_AND_LOCK = text(
    f"WITH {_START_CTES}, locked AS ({CHAIN_LOCK_SQL}) "
    "SELECT id, created_at FROM started UNION ALL SELECT NULL, NULL FROM locked"
)

_CATALOG_COLUMNS = (
    "file_id, storage_element_id, original_filename, content_type, size_bytes, sha256, status, retention, "
    "description, tags, metadata, created_by, saga_id, attributes, created_at, updated_at"
)
_AUDIT_COLUMNS = "id, occurred_at, action, outcome, actor, subject, service, request_id, details, prev_hash, hash, signature"

# Upload sagas still `started` for the file and element named become `completed`, with their step and their
# catalog rows. A saga in another state or naming another file is left alone (the caller sees it missing), a
# file already catalogued fails the statement.
_COMPLETE_CTES = f"""
    given AS (
        SELECT * FROM unnest(
            CAST(:saga_ids AS uuid[]), CAST(:file_ids AS uuid[]), CAST(:element_ids AS text[]),
            CAST(:filenames AS text[]), CAST(:content_types AS text[]), CAST(:sizes AS bigint[]),
            CAST(:sha256s AS text[]), CAST(:statuses AS text[]), CAST(:retentions AS text[]),
            CAST(:descriptions AS text[]), CAST(:tags AS text[]), CAST(:metadata AS text[]),
            CAST(:created_bys AS text[]), CAST(:documents AS text[]), CAST(:created_ats AS timestamptz[]),
            CAST(:updated_ats AS timestamptz[])
        ) AS g(saga_id, file_id, storage_element_id, original_filename, content_type, size_bytes, sha256,
               status, retention, description, tags, metadata, created_by, attributes, created_at, updated_at)
    ), completed AS (
        UPDATE sagas SET status = 'completed', updated_at = now()
        FROM given
        WHERE sagas.id = given.saga_id AND sagas.type = 'upload' AND sagas.status = 'started'
          AND sagas.file_id = given.file_id AND sagas.storage_element_id = given.storage_element_id
        RETURNING sagas.id, sagas.created_at
    ), catalogued AS (
        INSERT INTO files ({_CATALOG_COLUMNS})
        SELECT file_id, storage_element_id, original_filename, content_type, size_bytes, sha256, given.status,
               retention, description, CAST(tags AS jsonb), CAST(metadata AS jsonb), created_by, saga_id,
               CAST(attributes AS jsonb), given.created_at, updated_at
        FROM given JOIN completed ON completed.id = given.saga_id
    ), complete_steps AS (
        INSERT INTO saga_steps (saga_id, step, status, details)
        SELECT id, 'completed', 'done', CAST(:details AS jsonb) FROM completed
    )"""
# The completions' sealed audit records; `guards` are CTEs that must be read before any record is written.
_AUDIT_CTE = f"""
    audited AS (
        INSERT INTO audit_log ({_AUDIT_COLUMNS})
        SELECT id, occurred_at, action, outcome, actor, subject, service, request_id, CAST(details AS jsonb),
               prev_hash, hash, signature
        FROM unnest(
            CAST(:audit_ids AS bigint[]), CAST(:audit_times AS timestamptz[]), CAST(:audit_actions AS text[]),
            CAST(:audit_outcomes AS text[]), CAST(:audit_actors AS text[]), CAST(:audit_subjects AS text[]),
            CAST(:audit_services AS text[]), CAST(:audit_request_ids AS text[]), CAST(:audit_details AS text[]),
            CAST(:audit_prev_hashes AS text[]), CAST(:audit_hashes AS text[]), CAST(:audit_signatures AS text[])
        ) AS a(id, occurred_at, action, outcome, actor, subject, service, request_id, details, prev_hash, hash,
               signature){{guards}}
    )"""
# The completions, with their audit records (chained on a head read under the lock earlier in the
# transaction); the sagas completed come back.
_COMPLETE_UPLOADS = text(
    f"WITH {_COMPLETE_CTES}, {_AUDIT_CTE.format(guards='')} SELECT id, created_at FROM completed"
)
# A whole batch in one statement and one implicit transaction (no BEGIN, no COMMIT of its own): the starts,
# the completions, and their audit records chained on the head the admin's last batch left. The chain's lock
# is taken before the first record is written; a stale head fails on audit_log's primary key, and a
# completion that does not apply (its saga no longer `started`) fails the whole statement through the
# `all_completed` check, whose message says so. Either failure undoes everything the statement did.
_WHOLE_BATCH = text(
    f"WITH {_START_CTES}, {_COMPLETE_CTES}, "
    f"locked AS ({CHAIN_LOCK_SQL}), "
    # MATERIALIZED and read in the WHERE below: inlined, with its value unused, the check would be dropped.
    "all_completed AS MATERIALIZED ("
    "SELECT CAST(CASE WHEN count(*) = :expected THEN '1' "
    "ELSE 'not every completion of this saga batch applies' END AS integer) AS ok FROM completed), "
    f"{_AUDIT_CTE.format(guards=', locked, all_completed WHERE all_completed.ok = 1')} "
    "SELECT true AS started, id, created_at FROM started "
    "UNION ALL SELECT false, id, created_at FROM completed"
)


async def start_uploads(
    connection: AsyncConnection, sagas_: list[dict[str, Any]], actor: str, *, lock_audit_chain: bool = False
) -> dict[uuid.UUID, Any]:
    """Start upload sagas (id, file_id, storage_element_id, payload as JSON text each) on registered
    elements; the created_at of each one started, by id (one missing: its element is not registered). With
    `lock_audit_chain` the statement also takes the audit chain's lock (AuditLog.lock_head(locked=True))."""
    result = await connection.execute(
        _START_UPLOADS_AND_LOCK if lock_audit_chain else _START_UPLOADS_ALONE,
        {**_start_parameters(sagas_), "actor": actor, "details": json.dumps({"by": actor})},
    )
    return {row.id: row.created_at for row in result if row.id is not None}


async def complete_uploads(
    connection: AsyncConnection, rows: list[dict[str, Any]], audit_rows: list[dict[str, Any]], actor: str
) -> dict[uuid.UUID, Any]:
    """Complete upload sagas: `rows` are their catalog rows (catalog.catalog_values), `audit_rows` their
    sealed audit records. The created_at of each saga completed, by id."""
    result = await connection.execute(
        _COMPLETE_UPLOADS, {**_complete_parameters(rows, audit_rows), "details": json.dumps({"by": actor})}
    )
    return {row.id: row.created_at for row in result}


async def whole_batch(
    connection: AsyncConnection,
    sagas_: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    audit_rows: list[dict[str, Any]],
    actor: str,
) -> tuple[dict[uuid.UUID, Any], dict[uuid.UUID, Any]]:
    """start_uploads and complete_uploads in one statement, on a connection in autocommit mode: the
    created_at of each saga started and of each completed, by id. `audit_rows` are chained on the head the
    admin's last batch left (AuditLog.batch_head); the statement fails, and changes nothing, when that head
    is stale or when a completion does not apply."""
    starts, completions = _start_parameters(sagas_), _complete_parameters(rows, audit_rows)
    assert not starts.keys() & completions.keys()
    result = await connection.execute(
        _WHOLE_BATCH,
        {
            **starts,
            **completions,
            "actor": actor,
            "details": json.dumps({"by": actor}),
            "expected": len(rows),
        },
    )
    started: dict[uuid.UUID, Any] = {}
    completed: dict[uuid.UUID, Any] = {}
    for row in result:
        (started if row.started else completed)[row.id] = row.created_at
    return started, completed


def _start_parameters(sagas_: list[dict[str, Any]]) -> dict[str, Any]:
    # Named apart from _complete_parameters': _WHOLE_BATCH takes both.
    return {
        "start_ids": [saga["id"] for saga in sagas_],
        "start_file_ids": [saga["file_id"] for saga in sagas_],
        "start_element_ids": [saga["storage_element_id"] for saga in sagas_],
        "start_payloads": [saga["payload"] for saga in sagas_],
    }


def _complete_parameters(rows: list[dict[str, Any]], audit_rows: list[dict[str, Any]]) -> dict[str, Any]:
    def column(name: str, encode: Any = None) -> list[Any]:
        return _column(rows, name, encode)

    def audit(name: str, encode: Any = None) -> list[Any]:
        return _column(audit_rows, name, encode)

    return {
        "saga_ids": column("saga_id"),
        "file_ids": column("file_id"),
        "element_ids": column("storage_element_id"),
        "filenames": column("original_filename"),
        "content_types": column("content_type"),
        "sizes": column("size_bytes"),
        "sha256s": column("sha256"),
        "statuses": column("status"),
        "retentions": column("retention"),
        "descriptions": column("description"),
        "tags": column("tags", json.dumps),
        "metadata": column("metadata", json.dumps),
        "created_bys": column("created_by"),
        "documents": column("attributes", json.dumps),
        "created_ats": column("created_at"),
        "updated_ats": column("updated_at"),
        "audit_ids": audit("id"),
        "audit_times": audit("occurred_at"),
        "audit_actions": audit("action"),
        "audit_outcomes": audit("outcome"),
        "audit_actors": audit("actor"),
        "audit_subjects": audit("subject"),
        "audit_services": audit("service"),
        "audit_request_ids": audit("request_id"),
        "audit_details": audit("details", json.dumps),
        "audit_prev_hashes": audit("prev_hash"),
        "audit_hashes": audit("hash"),
        "audit_signatures": audit("signature"),
    }


def _column(rows: list[dict[str, Any]], name: str, encode: Any = None) -> list[Any]:
    """One column of `rows` as a list (for unnest), each value passed through `encode` when given."""
    return [row[name] if encode is None else encode(row[name]) for row in rows]
