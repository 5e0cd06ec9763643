"""A realistic catalog for the query benchmark: generated rows (names, tags, descriptions, metadata that
follow the creation date as real ones do) and their bulk load into the admin's catalog table."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.report import Log

SEED = 5  # issue 5: the same catalog and the same searches in every run


_DOC_TYPES = (
    "invoice", "contract", "report", "scan", "letter", "minutes", "drawing", "photo", "statement", "memo",
    "specification", "proposal", "receipt", "certificate", "manual", "presentation", "timesheet", "budget",
    "audit", "policy", "agreement", "order", "quote", "datasheet", "survey",
)  # fmt: skip
_DEPARTMENTS = (
    "finance", "legal", "hr", "sales", "engineering", "procurement", "marketing", "operations", "it",
    "research", "logistics", "quality",
)  # fmt: skip
_EXTENSIONS = (  # extension, content type, share of files
    ("pdf", "application/pdf", 45),
    ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", 14),
    ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", 10),
    ("jpg", "image/jpeg", 10),
    ("png", "image/png", 5),
    ("txt", "text/plain", 5),
    ("csv", "text/csv", 5),
    ("pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation", 4),
    ("zip", "application/zip", 2),
)
_SYLLABLES = (
    "ac", "me", "nor", "dia", "vel", "tra", "kon", "sol", "mar", "lin", "gro", "ber", "tek", "zen", "qua",
    "ria", "dor", "fin", "sta", "pol", "vik", "ran", "lum", "cor", "tal", "mes", "bra", "hol", "sen", "gar",
)  # fmt: skip
_WORDS = (
    "quarterly", "annual", "monthly", "signed", "draft", "final", "revised", "copy", "original", "approved",
    "pending", "payment", "delivery", "shipment", "warehouse", "inventory", "customer", "supplier",
    "employee", "review", "meeting", "board", "project", "forecast", "tax", "compliance", "safety",
    "inspection", "maintenance", "service", "license", "renewal", "termination", "amendment", "appendix",
    "schedule", "price", "discount", "claim", "insurance", "warranty", "travel", "expenses", "salary",
    "training", "onboarding", "recruitment", "tender", "framework", "purchase", "credit", "debit", "balance",
    "ledger", "reconciliation", "export", "import", "customs", "freight", "container", "pallet", "repair",
    "calibration", "certification", "prototype", "design", "architecture", "network", "server", "backup",
    "incident", "security", "privacy", "consent", "retention", "archive", "migration", "rollout", "pilot",
    "evaluation", "benchmark", "results", "summary", "overview", "analysis", "strategy", "roadmap",
    "marketing", "campaign", "brochure", "newsletter", "press", "release", "partner", "subsidiary",
    "branch", "office", "facility", "lease", "rent", "utilities", "energy", "emissions", "sustainability",
    "environment", "permit", "approval", "regulator", "court", "dispute", "settlement", "notice", "reminder",
    "overdue", "refund", "correction", "cancellation", "confirmation", "receipt", "statement", "dividend",
)  # fmt: skip
_COMMON_TAGS = (
    "signed", "final", "draft", "confidential", "archived", "scanned", "reviewed", "approved", "internal",
    "external", "urgent", "original", "copy", "public", "q1", "q2", "q3", "q4", "legacy", "gdpr",
)  # fmt: skip
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December",
)  # fmt: skip


def _zipf(values: tuple[str, ...] | list[str], exponent: float = 1.0) -> tuple[list[str], list[float]]:
    """Values with cumulative weights 1/rank^exponent: a few frequent, a long tail of rare ones."""
    cumulative, total = [], 0.0
    for rank in range(1, len(values) + 1):
        total += 1 / rank**exponent
        cumulative.append(total)
    return list(values), cumulative


@dataclass
class CatalogGenerator:
    """Rows for the admin's `files` table, as the catalog of a document store that has run for years."""

    element_id: str
    created_by: str
    retention_template: dict[str, Any]
    now: datetime
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))

    def __post_init__(self) -> None:
        names: set[str] = set()
        while len(names) < 600:
            stem = "".join(self.rng.choice(_SYLLABLES) for _ in range(self.rng.choice((2, 2, 3))))
            names.add(stem.capitalize())
        companies = sorted(names)
        self.rng.shuffle(companies)
        self._companies = _zipf(companies, 0.9)
        self._doc_types = _zipf(_DOC_TYPES, 0.8)
        self._departments = _zipf(_DEPARTMENTS, 0.7)
        self._words = _zipf(_WORDS, 0.8)
        self._tags = _zipf(_COMMON_TAGS, 1.0)
        self._extensions = [e for e in _EXTENSIONS]
        self._extension_weights = [e[2] for e in _EXTENSIONS]
        self._span_seconds = 6 * 365 * 86_400

    def _pick(self, table: tuple[list[str], list[float]]) -> str:
        values, cumulative = table
        return self.rng.choices(values, cum_weights=cumulative)[0]

    def _filename(self, doc_type: str, company: str, department: str, created: datetime, ext: str) -> str:
        rng = self.rng
        shape = rng.randrange(6)
        if shape == 0:
            return f"{doc_type}_{company.lower()}_{created:%Y-%m-%d}.{ext}"
        if shape == 1:
            return f"{company} {doc_type.capitalize()} {created.year} Q{(created.month - 1) // 3 + 1}.{ext}"
        if shape == 2:
            return f"{department}-{doc_type}-{rng.randrange(100_000):05d}-v{rng.randint(1, 5)}.{ext}"
        if shape == 3:
            return f"scan{rng.randrange(1_000_000):06d}.{ext}"
        if shape == 4:
            return f"PRJ-{rng.randrange(10_000):04d} {doc_type} {company}.{ext}"
        return f"{created:%Y%m%d}_{doc_type}_{rng.randrange(10_000)}.{ext}"

    def _description(self, doc_type: str, company: str, department: str, created: datetime) -> str:
        words = " ".join(self._pick(self._words) for _ in range(self.rng.randint(3, 12)))
        return (
            f"{doc_type.capitalize()} for {company} ({department}), {_MONTHS[created.month - 1]} "
            f"{created.year}: {words}."
        )

    def row(self) -> dict[str, Any]:
        rng = self.rng
        created = self.now - timedelta(seconds=rng.randrange(self._span_seconds))
        updated = created if rng.random() < 0.85 else created + timedelta(seconds=rng.randrange(30 * 86_400))
        doc_type = self._pick(self._doc_types)
        company = self._pick(self._companies)
        department = self._pick(self._departments)
        ext, content_type, _ = rng.choices(self._extensions, weights=self._extension_weights)[0]
        filename = self._filename(doc_type, company, department, created, ext)
        tags = [department, doc_type, str(created.year)]
        for _ in range(rng.choice((0, 1, 1, 2))):
            tag = self._pick(self._tags)
            if tag not in tags:
                tags.append(tag)
        if rng.random() < 0.3:
            tags.append(f"customer:{company.lower()}")
        metadata: dict[str, Any] = {"department": department, "customer": company, "year": created.year}
        if ext in ("pdf", "docx", "pptx"):
            metadata["pages"] = rng.randint(1, 400)
        if rng.random() < 0.4:
            metadata["project"] = f"PRJ-{rng.randrange(10_000):04d}"
        retention = {**self.retention_template, "policy": "permanent", "expires_at": None}
        if rng.random() < 0.1:
            expires = created + timedelta(days=rng.choice((30, 90, 365)))
            retention.update(policy="temporary", expires_at=expires.isoformat())
        return {
            "file_id": uuid.UUID(bytes=rng.randbytes(16), version=4),
            "storage_element_id": self.element_id,
            "original_filename": filename,
            "content_type": content_type,
            "size_bytes": max(1, int(rng.lognormvariate(12.0, 2.0))),
            "sha256": rng.randbytes(32).hex(),
            "status": "active",  # the admin takes a deleted file's row out of the catalog
            "retention": retention["policy"],
            "retention_document": retention,
            "description": self._description(doc_type, company, department, created),
            "tags": tags,
            "metadata": metadata,
            "created_by": self.created_by,
            "created_at": created,
            "updated_at": updated,
        }


def _attributes(row: dict[str, Any]) -> dict[str, Any]:
    """The row's attr.json, as the element would have written it (storage/attributes.py, schema 1)."""
    return {
        "schema_version": 1,
        "file_id": str(row["file_id"]),
        "original_filename": row["original_filename"],
        "content_type": row["content_type"],
        "size_bytes": row["size_bytes"],
        "sha256": row["sha256"],
        "storage_element_id": row["storage_element_id"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        "created_by": row["created_by"],
        "description": row["description"],
        "tags": row["tags"],
        "metadata": row["metadata"],
        "retention": row["retention_document"],
        "status": row["status"],
        "saga_id": None,
    }


@dataclass
class CatalogLoad:
    rows: int
    generate_and_copy_seconds: float
    index_seconds: float
    vacuum_analyze_seconds: float
    table_bytes: int
    indexes: list[str]
    samples: list[dict[str, Any]]  # a spread of the rows loaded, to draw search terms from

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "generate_and_copy_seconds": round(self.generate_and_copy_seconds, 1),
            "index_build_seconds": round(self.index_seconds, 1),
            "vacuum_analyze_seconds": round(self.vacuum_analyze_seconds, 1),
            "table_with_indexes_bytes": self.table_bytes,
            "indexes_rebuilt": self.indexes,
        }


_SECONDARY_INDEXES = """
SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS definition
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = $1 AND t.relname = 'files'
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
"""
_COPY_BATCH = 20_000
_SAMPLES = 4_000


async def load_catalog(database_url: str, schema: str, rows: int, log: Log) -> CatalogLoad:
    """COPY `rows` generated rows into the catalog the way PostgreSQL's docs advise for a bulk load: the
    secondary indexes dropped first and built again after (from their own definitions), then VACUUM ANALYZE,
    so the rows are as a long-running catalog's are (statistics known, visibility map set)."""
    connection = await asyncpg.connect(database_url)
    try:
        template = await connection.fetchrow(f'SELECT * FROM "{schema}".files ORDER BY created_at LIMIT 1')
        if template is None:
            raise RuntimeError("the catalog is empty: the files uploaded first should be in it")
        real = json.loads(template["attributes"])
        generator = CatalogGenerator(
            element_id=template["storage_element_id"],
            created_by=template["created_by"],
            retention_template=dict(real.get("retention") or {"policy": "permanent"}),
            now=datetime.now(UTC),
        )
        columns = [
            r["column_name"]
            for r in await connection.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 "
                "AND table_name = 'files' AND is_generated = 'NEVER' ORDER BY ordinal_position",
                schema,
            )
        ]
        indexes = [(r["name"], r["definition"]) for r in await connection.fetch(_SECONDARY_INDEXES, schema)]
        await connection.execute("SET maintenance_work_mem = '512MB'")
        for name, _ in indexes:
            await connection.execute(f'DROP INDEX "{schema}"."{name}"')
        synced_at = datetime.now(UTC)
        every = max(rows // _SAMPLES, 1)
        samples: list[dict[str, Any]] = []

        def make_batch(first: int) -> list[tuple[Any, ...]]:
            batch = []
            for index in range(first, min(first + _COPY_BATCH, rows)):
                row = generator.row()
                if index % every == 0:
                    samples.append(row)
                values = {
                    **row,
                    "tags": json.dumps(row["tags"]),
                    "metadata": json.dumps(row["metadata"]),
                    "attributes": json.dumps(_attributes(row)),
                    "saga_id": None,
                    "synced_at": synced_at,
                }
                batch.append(tuple(values[c] if c in values else template[c] for c in columns))
            return batch

        # The next batch is generated in a thread while PostgreSQL takes the current one: two cores, both busy.
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        done = 0
        pending = loop.run_in_executor(None, make_batch, 0)
        while done < rows:
            batch = await pending
            if done + len(batch) < rows:
                pending = loop.run_in_executor(None, make_batch, done + len(batch))
            await connection.copy_records_to_table(
                "files", schema_name=schema, columns=columns, records=batch
            )
            done += len(batch)
            if done % 200_000 == 0:
                log(f"  {done:,} rows in {time.perf_counter() - started:.0f} s")
        copied = time.perf_counter() - started
        started = time.perf_counter()
        for _, definition in indexes:
            await connection.execute(definition)
        indexed = time.perf_counter() - started
        started = time.perf_counter()
        await connection.execute(f'VACUUM (ANALYZE) "{schema}".files')
        vacuumed = time.perf_counter() - started
        size = await connection.fetchval(f"SELECT pg_total_relation_size('\"{schema}\".files')")
    finally:
        await connection.close()
    return CatalogLoad(
        rows, copied, indexed, vacuumed, int(size), [definition for _, definition in indexes], samples
    )
