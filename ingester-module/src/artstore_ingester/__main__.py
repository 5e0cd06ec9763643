"""python -m artstore_ingester: serve the ingester with settings from ARTSTORE_INGESTER_* variables."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from artstore_common.service import serve
from artstore_ingester.app import SERVICE, create_app
from artstore_ingester.settings import IngesterSettings


def main() -> None:
    try:
        settings = IngesterSettings()
    except ValidationError as exc:
        print(f"ingester: invalid settings (ARTSTORE_INGESTER_*):\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None
    serve(create_app(settings), settings, SERVICE)


if __name__ == "__main__":
    main()
