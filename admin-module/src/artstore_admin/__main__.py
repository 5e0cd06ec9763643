"""python -m artstore_admin: serve the admin module with settings from ARTSTORE_ADMIN_* variables."""

from __future__ import annotations

from artstore_admin.app import SERVICE, create_app
from artstore_admin.settings import AdminSettings
from artstore_common.service import run


def main() -> None:
    run(AdminSettings, create_app, SERVICE, label="admin")


if __name__ == "__main__":
    main()
