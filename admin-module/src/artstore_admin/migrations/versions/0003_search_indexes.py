"""Indexes for the query module's search (DESIGN section 6) over the catalog.

Two generated columns carry what search matches on, so the query module names a column instead of
repeating an expression that must match an index character for character:
- `search_words`: the full-text document. Filename, description and tags, where every run of characters
  that are not letters or digits (`[^[:alnum:]]`) becomes one space, read with the 'simple' configuration
  (lower case, no stemming, no stop words: documents come in any language). The tags enter as the JSON
  text of their list with each escape sequence (`\\"`, `\\n`, `\\u0001`, ...) blanked first: every one
  stands for a character that is not a letter or a digit, so `["q1", "a\\nb"]` gives q1, a, b.
- `media_type`: the content type without parameters, in lower case (`Text/Plain; charset=utf-8` ->
  `text/plain`).

The trigram index for filename substrings needs pg_trgm, which the embedded PostgreSQL does not ship;
without it substring search still works (ILIKE), by scanning.

Revision ID: 0003
Revises: 0002
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_log = logging.getLogger("artstore.admin.migrations")

_TAG_WORDS = r"regexp_replace(tags::text, '\\(u[0-9a-fA-F]{4}|.)', ' ', 'g')"
_DOCUMENT = f"original_filename || ' ' || coalesce(description, '') || ' ' || {_TAG_WORDS}"
_SEARCH_WORDS = f"to_tsvector('simple'::regconfig, regexp_replace({_DOCUMENT}, '[^[:alnum:]]+', ' ', 'g'))"
_MEDIA_TYPE = "lower(btrim(split_part(content_type, ';', 1)))"


def upgrade() -> None:
    # One ALTER, so the table is rewritten once.
    op.execute(
        f"ALTER TABLE files ADD COLUMN search_words tsvector GENERATED ALWAYS AS ({_SEARCH_WORDS}) STORED, "
        f"ADD COLUMN media_type text GENERATED ALWAYS AS ({_MEDIA_TYPE}) STORED"
    )
    op.execute("CREATE INDEX ix_files_search_words ON files USING gin (search_words)")
    op.execute("CREATE INDEX ix_files_tags ON files USING gin (tags jsonb_path_ops)")
    op.execute("CREATE INDEX ix_files_metadata ON files USING gin (metadata jsonb_path_ops)")
    # text_pattern_ops serves both `=` and the `LIKE 'image/%'` of a `type/*` filter in any collation.
    op.execute("CREATE INDEX ix_files_media_type ON files (media_type text_pattern_ops)")
    op.create_index("ix_files_updated", "files", ["updated_at", "file_id"])
    op.create_index("ix_files_size", "files", ["size_bytes", "file_id"])
    # Search sorts names by code point (COLLATE "C"): the same order whatever the database's locale.
    op.execute('CREATE INDEX ix_files_filename ON files ((original_filename COLLATE "C"), file_id)')
    _trigram_index()


def _trigram_index() -> None:
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).first() is None:
        _log.info("pg_trgm is not available: filename substring search runs without a trigram index")
        return
    # Admins of several schemas share the database and its extensions: one creates pg_trgm, in `public`,
    # never in its own schema (which may be dropped with everything in it).
    bind.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('artstore-extension-pg_trgm'))"))
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public"))
    except sa.exc.DBAPIError as exc:
        _log.warning("pg_trgm could not be created (%s): no trigram index for filename substrings", exc.orig)
        return
    schema = bind.execute(
        sa.text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'pg_trgm'"
        )
    ).scalar_one()
    op.execute(
        f'CREATE INDEX ix_files_filename_trigrams ON files USING gin (original_filename "{schema}".gin_trgm_ops)'
    )


def downgrade() -> None:
    for index in (
        "ix_files_filename_trigrams",
        "ix_files_filename",
        "ix_files_size",
        "ix_files_updated",
        "ix_files_media_type",
        "ix_files_metadata",
        "ix_files_tags",
        "ix_files_search_words",
    ):
        op.execute(f"DROP INDEX IF EXISTS {index}")
    op.execute("ALTER TABLE files DROP COLUMN media_type, DROP COLUMN search_words")
