"""Search over the admin's catalog: filters, keyset pages, a time limit on every statement."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

from artstore_common.errors import DependencyUnavailable, ServiceUnavailable, ValidationFailed
from artstore_query.search import cursor
from artstore_query.search.filters import SearchRequest
from artstore_query.search.statements import search_statement
from artstore_query.settings import QuerySettings

_QUERY_CANCELED = "57014"
# For this transaction only: the time limit, no write whatever a statement says, and no JIT compilation
# (the week walk's estimated cost is that of every week; compiling it would cost more than running it).
_LIMITS = text(
    "SELECT set_config('statement_timeout', :ms, true), set_config('transaction_read_only', 'on', true), "
    "set_config('jit', 'off', true)"
)


class SearchService:
    def __init__(self, engine: AsyncEngine, settings: QuerySettings) -> None:
        self._engine = engine
        self._default_limit = min(settings.search_default_limit, settings.search_max_limit)
        self._max_limit = settings.search_max_limit
        self._timeout_ms = max(1, round(settings.search_timeout_seconds * 1000))

    async def search(self, request: SearchRequest) -> dict[str, Any]:
        """One page: `{"items": [attributes, ...], "next_cursor": str | None}`; no cursor after the last page.

        Rows are ordered by (sort value, file id) and a page starts strictly after the cursor's pair, so
        paging returns every file that matched throughout exactly once, whatever is inserted meanwhile.
        """
        limit = request.limit or self._default_limit
        if limit > self._max_limit:
            raise ValidationFailed(f"limit is {limit}; a page holds at most {self._max_limit} files")
        after = cursor.decode(request.cursor, request) if request.cursor else None
        try:
            async with self._engine.connect() as connection, connection.begin():
                await connection.execute(_LIMITS, {"ms": str(self._timeout_ms)})
                # One row more than asked tells whether another page follows.
                rows = (await connection.execute(search_statement(request, after, limit + 1))).all()
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == _QUERY_CANCELED:
                raise ServiceUnavailable(
                    f"the search ran longer than {self._timeout_ms / 1000:g} s and was stopped; "
                    "narrow it with more filters",
                    code="SEARCH_TIMEOUT",
                ) from None
            if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
                raise _catalog_unavailable(exc) from exc
            raise
        except (PoolTimeout, OSError, TimeoutError) as exc:
            raise _catalog_unavailable(exc) from exc
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = cursor.encode(cursor.Position(last.sort_value, last.file_id), request)
        return {"items": [row.attributes for row in rows], "next_cursor": next_cursor}


def _catalog_unavailable(exc: BaseException) -> DependencyUnavailable:
    return DependencyUnavailable(f"the catalog database is unavailable ({type(exc).__name__}); retry later")
