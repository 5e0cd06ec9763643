"""Alembic environment: migrates the element's own schema."""

from artstore_common.migrations import run_migrations
from artstore_storage.repositories.tables import metadata

run_migrations(metadata, lock_name="artstore-storage-migrations")
