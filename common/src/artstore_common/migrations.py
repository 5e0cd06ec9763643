"""Alembic for every service: each migrates its own schema, one migrator at a time.

A service keeps its revisions in `<package>/migrations/`; its `env.py` is one call to `run_migrations`,
and its start calls `upgrade_to_head` in a worker thread before serving.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from artstore_common.database import create_engine


def upgrade_to_head(migrations: Path, database_url: str, schema: str) -> None:
    config = Config(str(migrations / "alembic.ini"))
    config.set_main_option("script_location", str(migrations))
    config.attributes["database_url"] = database_url
    config.attributes["schema"] = schema
    command.upgrade(config, "head")


def run_migrations(metadata: MetaData, lock_name: str) -> None:
    """The body of a service's env.py."""
    url: str = context.config.attributes["database_url"]
    schema: str = context.config.attributes["schema"]

    def migrate(connection: Connection) -> None:
        # Several processes (or restarts) may migrate the same database at once; one at a time.
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:lock))"), {"lock": lock_name})
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        connection.execute(text(f'SET search_path TO "{schema}"'))
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            transaction_per_migration=False,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        # A migration may rebuild an index over every row of a large table: no time limit per statement.
        engine = create_engine(url, schema=schema, pool_size=1, command_timeout=None)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(migrate)
        finally:
            await engine.dispose()

    asyncio.run(run())
