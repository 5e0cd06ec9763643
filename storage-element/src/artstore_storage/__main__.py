"""python -m artstore_storage: serve one storage element with settings from ARTSTORE_SE_* variables."""

from __future__ import annotations

from artstore_common.service import run
from artstore_storage.app import SERVICE, create_app
from artstore_storage.settings import StorageSettings


def main() -> None:
    run(StorageSettings, create_app, SERVICE, label="storage element")


if __name__ == "__main__":
    main()
