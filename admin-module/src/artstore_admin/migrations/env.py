"""Alembic environment: migrates the admin's own schema."""

from artstore_admin.repositories.tables import metadata
from artstore_common.migrations import run_migrations

run_migrations(metadata, lock_name="artstore-admin-migrations")
