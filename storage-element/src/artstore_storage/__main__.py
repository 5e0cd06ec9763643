"""python -m artstore_storage: serve one storage element with settings from ARTSTORE_SE_* variables."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from artstore_common.service import serve
from artstore_storage.app import SERVICE, create_app
from artstore_storage.settings import StorageSettings


def main() -> None:
    try:
        settings = StorageSettings()
    except ValidationError as exc:
        print(f"storage element: invalid settings (ARTSTORE_SE_*):\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None
    serve(create_app(settings), settings, SERVICE)


if __name__ == "__main__":
    main()
