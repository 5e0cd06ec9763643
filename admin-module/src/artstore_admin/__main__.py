"""python -m artstore_admin: serve the admin module with settings from ARTSTORE_ADMIN_* variables."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from artstore_admin.app import SERVICE, create_app
from artstore_admin.settings import AdminSettings
from artstore_common.service import serve


def main() -> None:
    try:
        settings = AdminSettings()
    except ValidationError as exc:
        print(f"admin: invalid settings (ARTSTORE_ADMIN_*):\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None
    serve(create_app(settings), settings, SERVICE)


if __name__ == "__main__":
    main()
