"""The search service against PostgreSQL, without HTTP: the admin's migrations on a schema of its own,
a small catalog, and what the HTTP tests cannot easily provoke (a statement running into its time limit)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

import artstore_admin
from artstore_common.database import create_engine
from artstore_common.errors import DependencyUnavailable, ServiceUnavailable
from artstore_common.migrations import upgrade_to_head
from artstore_query.search.cursor import InvalidCursor
from artstore_query.search.filters import SearchRequest
from artstore_query.search.service import SearchService
from artstore_query.settings import QuerySettings
from tests.query import _corpus
from tests.query._corpus import CatalogFile
from tests.support.infra import Infra, query

T = TypeVar("T")
MIGRATIONS = Path(artstore_admin.__file__).resolve().parent / "migrations"
ELEMENTS = ("se-edit-1", "se-rw-1")


class Catalog:
    def __init__(self, database_url: str, schema: str, files: list[CatalogFile]) -> None:
        self.database_url = database_url
        self.schema = schema
        self.files = files

    def run(self, work: Callable[[SearchService], Awaitable[T]], **settings: Any) -> T:
        async def go() -> T:
            engine = create_engine(self.database_url, schema=self.schema, pool_size=2)
            try:
                return await work(SearchService(engine, QuerySettings(**settings)))
            finally:
                await engine.dispose()

        return asyncio.run(go())

    def search_all(self, filters: dict[str, Any], limit: int = 100) -> list[dict[str, Any]]:
        async def walk(service: SearchService) -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = []
            cursor = None
            while True:
                page = await service.search(SearchRequest(**filters, limit=limit, cursor=cursor))
                items.extend(page["items"])
                cursor = page["next_cursor"]
                if cursor is None:
                    return items

        return self.run(walk)


@pytest.fixture(scope="module")
def catalog(infra: Infra) -> Iterator[Catalog]:
    schema = f"admin_{uuid.uuid4().hex[:10]}"
    upgrade_to_head(MIGRATIONS, infra.database_url, schema)
    files = _corpus.make_corpus(1500, ELEMENTS, seed=11)
    asyncio.run(_corpus.copy_into(infra.database_url, schema, files))
    yield Catalog(infra.database_url, schema, files)
    query(infra.database_url, f'DROP SCHEMA "{schema}" CASCADE')


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["file_id"] for item in items]


@pytest.mark.parametrize(
    "text",
    [
        "report",
        "Report ОТЧЁТ",
        "annual_report-2024.pdf",
        "invoice -draft",
        "budget or протокол",
        "scan or photo plan",
        '"annual report"',
        '-"годовой отчёт" budget',
        "plan--memo",
        "--memo budget",
        "memo -",
        "archive_old",
        "финансы",
    ],
)
def test_full_text_follows_the_documented_words(catalog: Catalog, text: str) -> None:
    expected = _corpus.search(catalog.files, {"query": text})
    assert 0 < len(expected) < len(catalog.files), "the corpus must make this query discriminating"
    assert _ids(catalog.search_all({"query": text}, limit=1000)) == [str(f.file_id) for f in expected]


def test_pages_join_up_to_the_whole_ordered_answer(catalog: Catalog) -> None:
    for sort in ("created_at", "updated_at", "size_bytes", "original_filename"):
        for order in ("asc", "desc"):
            filters = {"sort": sort, "order": order}
            expected = [str(f.file_id) for f in _corpus.search(catalog.files, filters)]
            assert _ids(catalog.search_all(filters, limit=97)) == expected, (sort, order)


def test_pages_keep_their_order_across_the_weeks_the_search_walks(infra: Infra) -> None:
    """Files created on either side of a week boundary of the search index (admin migration 0004), by
    one microsecond, and a run of older weeks without any: every page joins up in order, both ways."""
    week = 7 * 86_400
    boundaries = [datetime.fromtimestamp(n * week, UTC) for n in (2800, 2801, 2805, 2900)]
    moments = [b + timedelta(microseconds=d) for b in boundaries for d in (-1, 0, 1)]
    background = _corpus.make_corpus(300, ELEMENTS, seed=12)
    edge = [
        dataclasses.replace(
            f,
            created_at=moment,
            updated_at=moment,
            tags=[*f.tags, "edge"],
            original_filename=f"edgecase-{i}.txt",
            status="active",
        )
        for i, (f, moment) in enumerate(
            zip(_corpus.make_corpus(len(moments), ELEMENTS, seed=13), moments, strict=True)
        )
    ]
    schema = f"admin_{uuid.uuid4().hex[:10]}"
    upgrade_to_head(MIGRATIONS, infra.database_url, schema)
    try:
        asyncio.run(_corpus.copy_into(infra.database_url, schema, [*background, *edge]))
        catalog = Catalog(infra.database_url, schema, [*background, *edge])
        for terms in ({"tags": ["edge"]}, {"filename": "EdgeCase"}, {"query": "edgecase"}):
            for order in ("desc", "asc"):
                filters = {**terms, "order": order}
                expected = [str(f.file_id) for f in _corpus.search(catalog.files, filters)]
                assert len(expected) == len(moments), filters
                for limit in (1, 2, 5):
                    assert _ids(catalog.search_all(filters, limit=limit)) == expected, (filters, limit)
    finally:
        query(infra.database_url, f'DROP SCHEMA "{schema}" CASCADE')


def test_a_cursor_from_another_search_is_refused(catalog: Catalog) -> None:
    async def work(service: SearchService) -> None:
        page = await service.search(SearchRequest(tags=["invoice"], limit=5))
        assert page["next_cursor"]
        with pytest.raises(InvalidCursor, match="other filters"):
            await service.search(SearchRequest(tags=["legal"], cursor=page["next_cursor"]))
        # Tags are a set and the limit may change between pages: still the same search.
        same = await service.search(
            SearchRequest(tags=["invoice", "invoice"], limit=7, cursor=page["next_cursor"])
        )
        assert same["items"]

    catalog.run(work)


def test_a_search_past_its_time_limit_fails_with_a_clear_problem(catalog: Catalog) -> None:
    async def work(service: SearchService) -> None:
        blocker = await asyncpg.connect(catalog.database_url)
        try:
            # A search waiting on a lock is as stuck as one scanning forever; the limit covers both.
            async with blocker.transaction():
                await blocker.execute(f'LOCK TABLE "{catalog.schema}".files IN ACCESS EXCLUSIVE MODE')
                with pytest.raises(ServiceUnavailable) as caught:
                    await asyncio.wait_for(service.search(SearchRequest(query="report")), timeout=20)
        finally:
            await blocker.close()
        assert caught.value.code == "SEARCH_TIMEOUT"
        assert "0.3 s" in caught.value.detail

    catalog.run(work, search_timeout_seconds=0.3)


def test_a_search_without_its_database_fails_with_a_clear_problem() -> None:
    async def go() -> None:
        # Nothing listens on port 1: the catalog is unreachable.
        engine = create_engine("postgresql://postgres@127.0.0.1:1/none", pool_size=1)
        try:
            with pytest.raises(DependencyUnavailable, match="catalog database is unavailable"):
                await SearchService(engine, QuerySettings()).search(SearchRequest(query="report"))
        finally:
            await engine.dispose()

    asyncio.run(go())


def test_the_trigram_index_is_built_where_pg_trgm_exists_and_never_in_the_admin_schema(
    catalog: Catalog,
) -> None:
    available = query(catalog.database_url, "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    index = query(
        catalog.database_url,
        "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'ix_files_filename_trigrams'",
        catalog.schema,
    )
    installed = query(
        catalog.database_url,
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_trgm'",
    )
    if available:
        assert [row["nspname"] for row in installed] == ["public"]
        assert len(index) == 1
        assert "gin_trgm_ops" in index[0]["indexdef"]
    else:
        assert not index
        assert not installed
    # Substrings are found the same way with or without it: `%` and `_` are plain characters.
    for needle in ("50%", "a_b", "_v2", "ОТЧЁТ"):
        expected = [str(f.file_id) for f in _corpus.search(catalog.files, {"filename": needle})]
        assert expected, needle
        assert _ids(catalog.search_all({"filename": needle}, limit=1000)) == expected
