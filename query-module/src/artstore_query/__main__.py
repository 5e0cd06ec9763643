"""python -m artstore_query: serve the query module with settings from ARTSTORE_QUERY_* variables."""

from __future__ import annotations

from artstore_common.service import run
from artstore_query.app import SERVICE, create_app
from artstore_query.settings import QuerySettings


def main() -> None:
    run(QuerySettings, create_app, SERVICE, label="query")


if __name__ == "__main__":
    main()
