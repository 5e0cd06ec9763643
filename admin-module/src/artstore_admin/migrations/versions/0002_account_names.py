"""Service account names are unique among accounts that are not deleted.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE UNIQUE INDEX uq_service_accounts_live_name ON service_accounts (name) WHERE status <> 'deleted'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX uq_service_accounts_live_name")
