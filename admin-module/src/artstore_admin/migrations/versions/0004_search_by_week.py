"""Search terms by week: the newest matches of a broad term without reading every match (issue 5).

A search answers the newest files first (ORDER BY created_at DESC LIMIT n). With only the indexes of
migration 0003, a term that matches many files (a year, a month's name, a frequent tag) made PostgreSQL
either walk the creation-date index past every newer file that does not match, or fetch every match and
sort them: hundreds of milliseconds over a million files, seconds when the matches are all old.

This index keys each file's search terms by the week it was created in, `<week>:<term>`:
- `f` + each three-character slice of the lower-cased filename (a substring holds all of its own slices),
- `w` + each word of `search_words` (the full-text document of migration 0003),
- `t` + each tag, exactly.

The query module walks the weeks from the newest (or oldest) down, asking the index for the files of one
week that hold every term, and stops once a page is full: a week without a match costs one index probe,
and a week with matches costs only its own files. The other filters stay as they are and are checked on
the candidates, so the terms only narrow, never decide, what matches.

`fastupdate` is off: a search probes the index once per week, and a pending list would be read by every
probe; each insert pays for its entries instead.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

WEEK_SECONDS = 7 * 86_400

# Index expressions run under whatever search_path the session (or autovacuum) has: the functions name
# each other with their schema, and everything else they call is in pg_catalog.
_FUNCTIONS = (
    f"""
CREATE FUNCTION artstore_search_week(created_at timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$ SELECT floor(extract(epoch FROM created_at) / {WEEK_SECONDS})::bigint $$
""",
    """
CREATE FUNCTION artstore_search_terms(filename text, words tsvector, tags jsonb) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
    lowered text := lower(coalesce(filename, ''));
    terms text[] := ARRAY(SELECT 'w' || word FROM unnest(tsvector_to_array(words)) AS word);
BEGIN
    FOR i IN 1 .. char_length(lowered) - 2 LOOP
        terms := terms || ('f' || substr(lowered, i, 3));
    END LOOP;
    IF jsonb_typeof(tags) = 'array' THEN
        terms := terms || ARRAY(SELECT 't' || tag FROM jsonb_array_elements_text(tags) AS tag);
    END IF;
    RETURN terms;
END
$$
""",
    """
CREATE FUNCTION artstore_search_probe(week bigint, terms text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$ SELECT ARRAY(SELECT week::text || ':' || term FROM unnest(terms) AS term) $$
""",
    """
CREATE FUNCTION artstore_search_keys(created_at timestamptz, filename text, words tsvector, tags jsonb)
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT {schema}.artstore_search_probe({schema}.artstore_search_week(created_at),
                                      {schema}.artstore_search_terms(filename, words, tags))
$$
""",
)


def upgrade() -> None:
    schema = op.get_bind().execute(sa.text("SELECT quote_ident(current_schema())")).scalar_one()
    for statement in _FUNCTIONS:
        op.execute(statement.replace("{schema}", schema))
    op.execute(
        "CREATE INDEX ix_files_search_keys ON files USING gin "
        "(artstore_search_keys(created_at, original_filename, search_words, tags)) WITH (fastupdate = off)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_files_search_keys")
    for signature in (
        "artstore_search_keys(timestamptz, text, tsvector, jsonb)",
        "artstore_search_probe(bigint, text[])",
        "artstore_search_terms(text, tsvector, jsonb)",
        "artstore_search_week(timestamptz)",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
