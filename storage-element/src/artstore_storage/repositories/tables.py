"""The element's index table. It lives in the element's own schema and is rebuilt from attr.json."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, MetaData, String, Table, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()

file_index = Table(
    "file_index",
    metadata,
    Column("file_id", UUID(as_uuid=True), primary_key=True),
    Column("original_filename", Text, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("saga_id", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("attributes", JSONB, nullable=False),
    Column("indexed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_file_index_saga", "saga_id", postgresql_where=text("saga_id IS NOT NULL")),
    Index("ix_file_index_created", "created_at", "file_id"),
)
