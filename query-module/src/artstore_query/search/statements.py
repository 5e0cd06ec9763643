"""The SQL of a search over the catalog, one WHERE clause per filter (meanings in filters.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal, literal_column, select, tuple_, type_coerce
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


def search_statement(request: SearchRequest, after: Position | None, limit: int) -> Select[Any]:
    """Active files passing every filter, in sort order, `limit` of them after `after`."""
    sort_column = SORT_COLUMNS[request.sort]
    key = tuple_(sort_column, files.c.file_id)
    descending = request.order == "desc"
    conditions = [files.c.status == "active", *_filters(request)]
    if after is not None:
        position = tuple_(
            literal(after.value, sort_column.type), literal(after.file_id, files.c.file_id.type)
        )
        conditions.append(key < position if descending else key > position)
    ordering = [sort_column.desc(), files.c.file_id.desc()] if descending else [sort_column, files.c.file_id]
    return (
        select(files.c.attributes, sort_column.label("sort_value"), files.c.file_id)
        .where(and_(*conditions))
        .order_by(*ordering)
        .limit(limit)
    )


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
    return func.websearch_to_tsquery(literal_column("'simple'::regconfig"), words)


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
