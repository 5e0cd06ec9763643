"""Bring the admin's schema to the newest migration (run at start, in a worker thread)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def upgrade_to_head(database_url: str, schema: str) -> None:
    config = Config(str(_MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["database_url"] = database_url
    config.attributes["schema"] = schema
    command.upgrade(config, "head")
