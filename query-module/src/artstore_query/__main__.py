"""python -m artstore_query: serve the query module with settings from ARTSTORE_QUERY_* variables."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from artstore_common.service import serve
from artstore_query.app import SERVICE, create_app
from artstore_query.settings import QuerySettings


def main() -> None:
    try:
        settings = QuerySettings()
    except ValidationError as exc:
        print(f"query: invalid settings (ARTSTORE_QUERY_*):\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None
    serve(create_app(settings), settings, SERVICE)


if __name__ == "__main__":
    main()
