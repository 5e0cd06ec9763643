"""The SQL of a search over the catalog, one WHERE clause per filter (meanings in filters.py).

Two shapes answer the same question:
- the filters in one WHERE clause, PostgreSQL's choice of index;
- the week walk (`_weekly_statement`), for the default order (by creation date) when the search names a
  term: a filename substring of three characters or more, tags, or a full-text query of plain words. It
  walks the weeks of admin migration 0004 from the newest (or oldest) and asks `ix_files_search_keys` for
  the files of each week holding every term, stopping once the page is full. Broad terms whose matches are
  all old (a year, a month's name) no longer make PostgreSQL read every newer file or every match.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    and_,
    func,
    literal,
    literal_column,
    null,
    select,
    true,
    tuple_,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB

from artstore_query.catalog import files
from artstore_query.search.cursor import Position
from artstore_query.search.filters import SearchRequest

SORT_COLUMNS: dict[str, ColumnElement[Any]] = {
    "created_at": files.c.created_at,
    "updated_at": files.c.updated_at,
    "size_bytes": files.c.size_bytes,
    # By code point, whatever the database's locale: the order ix_files_filename keeps.
    "original_filename": files.c.original_filename.collate("C"),
}

# The words of the query as the catalog's search_words column (migration 0003) has them: any character
# that is not a letter or a digit separates words, except the double quotes of a phrase and a minus at
# the start of a word (an exclusion), which websearch_to_tsquery reads.
_NOT_SEARCH_SYNTAX = r'[^[:alnum:][:space:]"-]+'
_MINUS_NOT_STARTING_A_WORD = r'([^[:space:]-])-+|-+(?![[:alnum:]"])'
_SIMPLE: ColumnElement[Any] = literal_column("'simple'::regconfig")


def search_statement(request: SearchRequest, after: Position | None, limit: int) -> Select[Any]:
    """Active files passing every filter, in sort order, `limit` of them after `after`: the week walk
    where it can answer (module docstring), else the filters in one WHERE clause."""
    if _walks_weeks(request):
        return _weekly_statement(request, after, limit)
    sort_column = SORT_COLUMNS[request.sort]
    return (
        select(files.c.attributes, sort_column.label("sort_value"), files.c.file_id)
        .where(and_(*_conditions(request, after)))
        .order_by(*_ordering(request))
        .limit(limit)
    )


def _walks_weeks(request: SearchRequest) -> bool:
    """Sorted by creation date, with at least one indexed term (each of these gives one or more)."""
    if request.sort != "created_at":
        return False
    return bool(request.tags) or _trigram_needle(request) or _plain_words(request.query)


def _terms(request: SearchRequest) -> ColumnElement[Any]:
    """The terms (migration 0004's `artstore_search_terms`) every match holds, without their week: a
    subquery of constants, which PostgreSQL computes once per statement."""
    needle = request.filename if _trigram_needle(request) else None
    words = None
    if request.query is not None and _plain_words(request.query):
        words = func.to_tsvector(_SIMPLE, func.regexp_replace(request.query, "[^[:alnum:]]+", " ", "g"))
    tags = type_coerce(request.tags, JSONB) if request.tags else None
    return select(
        func.artstore_search_terms(
            literal(needle, Text) if needle is not None else null(),
            words if words is not None else null(),
            tags if tags is not None else null(),
        )
    ).scalar_subquery()


def _weekly_statement(request: SearchRequest, after: Position | None, limit: int) -> Select[Any]:
    """What `search_statement` answers for a created_at sort, one week at a time (module docstring).

    Every filter is still checked on each candidate; it is wrapped in IS TRUE (the same result in a WHERE
    clause) so that PostgreSQL does not join another index's bitmap of the whole catalog to each week's.
    """
    descending = request.order == "desc"
    bounds = files.alias("bounds")
    newest = select(func.max(bounds.c.created_at)).scalar_subquery()
    oldest = select(func.min(bounds.c.created_at)).scalar_subquery()
    cursor_time = after.value if after is not None else None
    upper = func.least(newest, *_timestamps(request.created_before, cursor_time if descending else None))
    lower = func.greatest(oldest, *_timestamps(request.created_after, None if descending else cursor_time))
    first, last = (upper, lower) if descending else (lower, upper)
    series = func.generate_series(
        func.artstore_search_week(first), func.artstore_search_week(last), -1 if descending else 1
    ).column_valued("week")
    weeks = select(series.label("week")).order_by(series.desc() if descending else series).subquery("weeks")
    keys = func.artstore_search_keys(
        files.c.created_at, files.c.original_filename, files.c.search_words, files.c.tags
    )
    probe = func.artstore_search_probe(weeks.c.week, _terms(request))
    page = (
        select(files.c.attributes, files.c.created_at, files.c.file_id)
        .where(keys.op("@>")(probe), and_(*_conditions(request, after)).is_(true()))
        .order_by(*_ordering(request))
        .limit(limit)
        .lateral("page")
    )
    in_order = [weeks.c.week, page.c.created_at, page.c.file_id]
    return (
        select(page.c.attributes, page.c.created_at.label("sort_value"), page.c.file_id)
        .select_from(weeks.join(page, true()))
        .order_by(*(column.desc() if descending else column for column in in_order))
        .limit(limit)
    )


def _conditions(request: SearchRequest, after: Position | None) -> list[ColumnElement[bool]]:
    sort_column = SORT_COLUMNS[request.sort]
    conditions = [files.c.status == "active", *_filters(request)]
    if after is not None:
        key = tuple_(sort_column, files.c.file_id)
        position = tuple_(
            literal(after.value, sort_column.type), literal(after.file_id, files.c.file_id.type)
        )
        conditions.append(key < position if request.order == "desc" else key > position)
    return conditions


def _ordering(request: SearchRequest) -> list[ColumnElement[Any]]:
    sort_column = SORT_COLUMNS[request.sort]
    if request.order == "desc":
        return [sort_column.desc(), files.c.file_id.desc()]
    return [sort_column, files.c.file_id]


def _timestamps(*values: Any) -> list[ColumnElement[Any]]:
    return [literal(value, files.c.created_at.type) for value in values if value is not None]


def _trigram_needle(request: SearchRequest) -> bool:
    return request.filename is not None and len(request.filename) >= 3


def _plain_words(query: str | None) -> bool:
    """Whether websearch_to_tsquery reads `query` as all of its words ANDed, so that every match holds each
    of them: no quote, no minus, no `or` (anything else gets no week terms and the usual statement)."""
    if query is None or '"' in query or "-" in query:
        return False
    return "or" not in re.split(r"[^0-9a-z]+", query.lower())


def _filters(request: SearchRequest) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if request.query is not None:
        conditions.append(files.c.search_words.op("@@")(_websearch(request.query)))
    if request.filename is not None:
        conditions.append(
            files.c.original_filename.ilike(f"%{_like_escaped(request.filename)}%", escape="\\")
        )
    if request.tags:
        conditions.append(files.c.tags.op("@>")(type_coerce(request.tags, JSONB)))
    if request.metadata:
        conditions.append(files.c.metadata.op("@>")(type_coerce(request.metadata, JSONB)))
    if request.content_type is not None:
        kind, subtype = request.content_type.split("/", 1)
        if subtype == "*":
            conditions.append(files.c.media_type.like(f"{_like_escaped(kind)}/%", escape="\\"))
        else:
            conditions.append(files.c.media_type == request.content_type)
    if request.size_min is not None:
        conditions.append(files.c.size_bytes >= request.size_min)
    if request.size_max is not None:
        conditions.append(files.c.size_bytes <= request.size_max)
    if request.created_after is not None:
        conditions.append(files.c.created_at >= request.created_after)
    if request.created_before is not None:
        conditions.append(files.c.created_at < request.created_before)
    if request.storage_element_id is not None:
        conditions.append(files.c.storage_element_id == request.storage_element_id)
    return conditions


def _websearch(query: str) -> ColumnElement[Any]:
    words = func.regexp_replace(
        func.regexp_replace(query, _NOT_SEARCH_SYNTAX, " ", "g"), _MINUS_NOT_STARTING_A_WORD, r"\1 ", "g"
    )
    return func.websearch_to_tsquery(_SIMPLE, words)


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
