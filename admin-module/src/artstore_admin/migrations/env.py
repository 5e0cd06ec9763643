"""Alembic environment: migrates the admin's schema, one migrator at a time."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from artstore_admin.repositories.tables import metadata
from artstore_common.database import create_engine

config = context.config
url: str = config.attributes["database_url"]
schema: str = config.attributes["schema"]


def _migrate(connection: Connection) -> None:
    # Several admin processes may start against one database at once; one migrates, the others wait.
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('artstore-admin-migrations'))"))
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


async def _run() -> None:
    engine = create_engine(url, schema=schema, pool_size=1)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_migrate)
    finally:
        await engine.dispose()


asyncio.run(_run())
