"""A generated catalog for the search tests, and every search filter computed over it in Python.

The rows go straight into the admin's `files` table (the query module only reads the catalog, so no file
needs bytes). The Python side follows the definitions in artstore_query/search/filters.py.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

_EN = [
    "annual",
    "report",
    "invoice",
    "contract",
    "budget",
    "minutes",
    "draft",
    "scan",
    "photo",
    "plan",
    "memo",
]
_RU = ["отчёт", "Годовой", "счёт", "договор", "бюджет", "протокол", "черновик", "План", "акт", "Письмо"]
_SEPARATORS = ["_", "-", " ", ".", "%", "__", "+", " (", ") ", "—"]
_EXTENSIONS = ["pdf", "docx", "png", "jpg", "txt", "csv", "xlsx", "PDF"]
_TAGS = [
    "invoice",
    "2024",
    "2023",
    "draft",
    "финансы",
    "legal",
    "q1",
    "q2",
    "hr",
    "scan",
    "urgent",
    "archive_old",
]
_CONTENT_TYPES = [
    "application/pdf",
    "image/png",
    "image/jpeg",
    "IMAGE/GIF",
    "text/plain; charset=utf-8",
    "text/plain",
    "Text/CSV",
    "application/vnd.ms-excel",
    "application/octet-stream",
]
_COMMON_SIZES = [0, 1, 1024, 4096, 1_048_576]
_START = datetime(2023, 1, 1, tzinfo=UTC)
_SPAN_SECONDS = 2 * 365 * 86_400

COLUMNS = (
    "file_id",
    "storage_element_id",
    "original_filename",
    "content_type",
    "size_bytes",
    "sha256",
    "status",
    "retention",
    "description",
    "tags",
    "metadata",
    "created_by",
    "attributes",
    "created_at",
    "updated_at",
)


@dataclass(frozen=True)
class CatalogFile:
    file_id: uuid.UUID
    storage_element_id: str
    original_filename: str
    content_type: str
    size_bytes: int
    status: str
    description: str | None
    tags: list[str]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    attributes: dict[str, Any] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        document = {
            "schema_version": 1,
            "file_id": str(self.file_id),
            "original_filename": self.original_filename,
            "content_type": self.content_type,
            "size_bytes": self.size_bytes,
            "sha256": self.file_id.hex * 2,
            "storage_element_id": self.storage_element_id,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "created_by": "corpus",
            "description": self.description,
            "tags": self.tags,
            "metadata": self.metadata,
            "retention": {"policy": "permanent", "expires_at": None},
            "status": self.status,
            "saga_id": None,
        }
        object.__setattr__(self, "attributes", document)

    def record(self) -> tuple[Any, ...]:
        return (
            self.file_id,
            self.storage_element_id,
            self.original_filename,
            self.content_type,
            self.size_bytes,
            self.file_id.hex * 2,
            self.status,
            "permanent",
            self.description,
            json.dumps(self.tags),
            json.dumps(self.metadata),
            "corpus",
            json.dumps(self.attributes),
            self.created_at,
            self.updated_at,
        )


def _word(rng: random.Random) -> str:
    word = rng.choice(_EN if rng.random() < 0.6 else _RU)
    roll = rng.random()
    return word.upper() if roll < 0.1 else word.capitalize() if roll < 0.25 else word


def _filename(rng: random.Random) -> str:
    parts = [_word(rng) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.4:
        parts.append(str(rng.choice([2023, 2024, 50, 7, rng.randint(1, 999)])))
    name = parts[0]
    for part in parts[1:]:
        name += rng.choice(_SEPARATORS) + part
    if rng.random() < 0.05:
        name += rng.choice(["50%", "_v2", "100%_final", "a_b"])
    return f"{name}.{rng.choice(_EXTENSIONS)}"


def _description(rng: random.Random) -> str | None:
    roll = rng.random()
    if roll < 0.1:
        return None
    if roll < 0.15:
        return ""
    words = [_word(rng) for _ in range(rng.randint(1, 10))]
    return rng.choice([" ", ", ", "; ", " - "]).join(words) + rng.choice(["", ".", "!"])


def _metadata(rng: random.Random) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if rng.random() < 0.6:
        metadata["dept"] = rng.choice(["legal", "finance", "hr", "ops", "бухгалтерия"])
    if rng.random() < 0.5:
        metadata["year"] = rng.randint(2019, 2025)
    if rng.random() < 0.3:
        metadata["score"] = rng.choice([1, 2, 2.0, 2.5, 3])
    if rng.random() < 0.3:
        metadata["flag"] = rng.choice([True, False, 1, 0])
    if rng.random() < 0.1:
        metadata["reviewed"] = None
    if rng.random() < 0.2:
        metadata["ref"] = f"R-{rng.randint(1, 50)}"
    return metadata


def make_corpus(count: int, element_ids: tuple[str, str], *, seed: int = 5) -> list[CatalogFile]:
    rng = random.Random(seed)
    shared_moments = [_START + timedelta(seconds=rng.randint(0, _SPAN_SECONDS)) for _ in range(40)]
    return [_catalog_file(rng, element_ids, shared_moments) for _ in range(count)]


def _catalog_file(
    rng: random.Random, element_ids: tuple[str, ...], shared_moments: list[datetime]
) -> CatalogFile:
    if rng.random() < 0.1:
        created = rng.choice(shared_moments)  # ties: the file id decides the order
    else:
        created = _START + timedelta(
            seconds=rng.randint(0, _SPAN_SECONDS), microseconds=rng.randint(0, 999_999)
        )
    updated = created if rng.random() < 0.2 else created + timedelta(seconds=rng.randint(1, 30 * 86_400))
    size = rng.choice(_COMMON_SIZES) if rng.random() < 0.4 else rng.randint(0, 5_000_000_000)
    return CatalogFile(
        file_id=uuid.UUID(int=rng.getrandbits(128), version=4),
        storage_element_id=rng.choice(element_ids),
        original_filename=_filename(rng),
        content_type=rng.choice(_CONTENT_TYPES),
        size_bytes=size,
        status="deleted" if rng.random() < 0.03 else "active",
        description=_description(rng),
        tags=rng.sample(_TAGS, rng.randint(0, 4)),
        metadata=_metadata(rng),
        created_at=created,
        updated_at=updated,
    )


def more_files(
    count: int, element_ids: tuple[str, ...], *, seed: int | str, tag: str | None = None
) -> list[CatalogFile]:
    """Active files of the same kind (all holding `tag` when given), e.g. to insert while a search is paged."""
    rng = random.Random(seed)
    made = [_catalog_file(rng, element_ids, [_START]) for _ in range(count)]
    return [
        replace(f, status="active", tags=f.tags if tag is None or tag in f.tags else [tag, *f.tags])
        for f in made
    ]


async def copy_into(database_url: str, schema: str, rows: list[CatalogFile]) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.copy_records_to_table(
            "files", schema_name=schema, columns=COLUMNS, records=[row.record() for row in rows]
        )
        await conn.execute(f'ANALYZE "{schema}".files')
    finally:
        await conn.close()


# -- search in Python ---------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(text)]


def document_words(f: CatalogFile) -> list[str]:
    return [
        *words(f.original_filename),
        *words(f.description or ""),
        *(w for tag in f.tags for w in words(tag)),
    ]


def _query_terms(query: str) -> list[list[tuple[bool, list[str]]]]:
    """The query as OR of AND groups of (negated, words) terms, for the subset of websearch syntax the
    tests use: words, "phrases", -exclusions and `or` between two terms."""
    normalized = re.sub(r'[^\w\s"-]|_', " ", query)
    normalized = re.sub(r'([^\s-])-+|-+(?![^\W_]|")', r"\1 ", normalized)
    groups: list[list[tuple[bool, list[str]]]] = [[]]
    for match in re.finditer(r'(-?)"([^"]*)"?|(-?)(\S+)', normalized):
        negated = bool(match.group(1) or match.group(3))
        text = match.group(2) if match.group(2) is not None else match.group(4)
        if match.group(4) is not None and match.group(4).lower() == "or" and not negated:
            assert groups[-1], f"'or' must follow a term in {query!r} (websearch quirks are not modelled)"
            groups.append([])
            continue
        found = words(text)
        if match.group(2) is not None or found:
            assert found, f"empty phrase in {query!r} is not modelled"
            groups[-1].append((negated, found))
    assert all(groups), f"'or' must sit between two terms in {query!r}"
    return groups


def _holds(document: list[str], phrase: list[str]) -> bool:
    n = len(phrase)
    return any(document[i : i + n] == phrase for i in range(len(document) - n + 1))


def matches_query(f: CatalogFile, query: str) -> bool:
    document = document_words(f)
    return any(
        all(_holds(document, phrase) != negated for negated, phrase in group) for group in _query_terms(query)
    )


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return bool(a == b) and type(a) is type(b)


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def matches(f: CatalogFile, filters: dict[str, Any]) -> bool:
    if f.status != "active":
        return False
    checks: dict[str, Callable[[Any], bool]] = {
        "query": lambda v: matches_query(f, v),
        "filename": lambda v: v.lower() in f.original_filename.lower(),
        "tags": lambda v: set(v) <= set(f.tags),
        "metadata": lambda v: all(k in f.metadata and _json_equal(f.metadata[k], x) for k, x in v.items()),
        "content_type": lambda v: (
            _media_type(f.content_type).startswith(_media_type(v)[:-1])
            if v.endswith("/*")
            else _media_type(f.content_type) == _media_type(v)
        ),
        "size_min": lambda v: f.size_bytes >= v,
        "size_max": lambda v: f.size_bytes <= v,
        "created_after": lambda v: f.created_at >= datetime.fromisoformat(v),
        "created_before": lambda v: f.created_at < datetime.fromisoformat(v),
        "storage_element_id": lambda v: f.storage_element_id == v,
        "status": lambda v: v == "active",
    }
    return all(checks[name](value) for name, value in filters.items() if name in checks)


def search(corpus: list[CatalogFile], filters: dict[str, Any]) -> list[CatalogFile]:
    """Every matching file in the order the search must return them (all pages together)."""
    sort = filters.get("sort", "created_at")
    found = [f for f in corpus if matches(f, filters)]
    # Names by code point (COLLATE "C"), then the file id as PostgreSQL orders uuids (by their bytes).
    found.sort(
        key=lambda f: (getattr(f, sort), f.file_id.bytes), reverse=filters.get("order", "desc") == "desc"
    )
    return found
