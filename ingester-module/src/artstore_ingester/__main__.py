"""python -m artstore_ingester: serve the ingester with settings from ARTSTORE_INGESTER_* variables."""

from __future__ import annotations

from artstore_common.service import run
from artstore_ingester.app import SERVICE, create_app
from artstore_ingester.settings import IngesterSettings


def main() -> None:
    run(IngesterSettings, create_app, SERVICE, label="ingester")


if __name__ == "__main__":
    main()
