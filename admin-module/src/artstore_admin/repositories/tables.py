"""The admin's tables, all in its own schema. Migrations in `migrations/` create them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Sequence,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", Text, primary_key=True),
    Column("algorithm", Text, nullable=False, server_default="RS256"),
    Column("public_jwk", JSONB, nullable=False),
    # AES-GCM: 12-byte nonce followed by ciphertext+tag of the PKCS#8 DER private key. Never plaintext.
    Column("private_key_encrypted", LargeBinary, nullable=False),
    Column("status", Text, nullable=False),  # active | retired
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("retired_at", DateTime(timezone=True), nullable=True),
    Column("publish_until", DateTime(timezone=True), nullable=True),  # end of the grace period
    Index("uq_signing_keys_one_active", "status", unique=True, postgresql_where=text("status = 'active'")),
)

service_accounts = Table(
    "service_accounts",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("name", Text, nullable=False),
    Column("client_id", Text, nullable=False, unique=True),
    Column("role", Text, nullable=False),
    Column("status", Text, nullable=False),  # active | suspended | deleted
    Column("is_system", Boolean, nullable=False, server_default=text("false")),
    Column("description", Text, nullable=True),
    Column("rate_limit_per_minute", Integer, nullable=True),
    Column("rate_limit_burst", Integer, nullable=True),
    Column("secret_expires_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # A deleted account's name may be reused; its client_id never is (migration 0002).
    Index("uq_service_accounts_live_name", "name", unique=True, postgresql_where=text("status <> 'deleted'")),
)

account_secrets = Table(
    "account_secrets",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column(
        "account_id",
        UUID(as_uuid=True),
        ForeignKey("service_accounts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("secret_hash", Text, nullable=False),  # a slow hash (scrypt) with its parameters and salt
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("valid_until", DateTime(timezone=True), nullable=True),  # set when rotated out: the overlap
    Index("ix_account_secrets_account", "account_id"),
)

storage_elements = Table(
    "storage_elements",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("mode", Text, nullable=False),
    Column("status", Text, nullable=False),  # online | offline
    Column("priority", Integer, nullable=False, server_default="100"),
    Column("capacity_bytes", BigInteger, nullable=True),
    Column("used_bytes", BigInteger, nullable=True),
    Column("free_bytes", BigInteger, nullable=True),
    Column("file_count", BigInteger, nullable=True),
    Column("info", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("last_seen_at", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("registered_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Every published discovery snapshot takes the next value, so `version` grows across restarts and admins.
discovery_version = Sequence("discovery_version", metadata=metadata)

files = Table(
    "files",
    metadata,
    Column("file_id", UUID(as_uuid=True), primary_key=True),
    Column("storage_element_id", Text, nullable=False),
    Column("original_filename", Text, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("retention", Text, nullable=False, server_default="permanent"),
    Column("description", Text, nullable=True),
    Column("tags", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_by", Text, nullable=True),
    Column("saga_id", UUID(as_uuid=True), nullable=True),
    Column("attributes", JSONB, nullable=False),  # the attr.json as the SE returned it
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("synced_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_files_created", "created_at", "file_id"),
    Index("ix_files_element", "storage_element_id"),
)

sagas = Table(
    "sagas",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("type", Text, nullable=False),  # upload | delete | mode_change
    Column("status", Text, nullable=False),  # started | completed | compensating | compensated | failed
    Column("file_id", UUID(as_uuid=True), nullable=True),
    Column("storage_element_id", Text, nullable=True),
    Column("idempotency_key", Text, nullable=True, unique=True),
    Column("payload", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("error", Text, nullable=True),
    Column("created_by", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_sagas_started", "created_at", postgresql_where=text("status IN ('started', 'compensating')")),
)

saga_steps = Table(
    "saga_steps",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("saga_id", UUID(as_uuid=True), ForeignKey("sagas.id", ondelete="CASCADE"), nullable=False),
    Column("step", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_saga_steps_saga", "saga_id", "id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True),  # assigned under the chain lock: gapless, in chain order
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("action", Text, nullable=False),
    Column("outcome", Text, nullable=False),  # success | failure
    Column("actor", Text, nullable=True),
    Column("subject", Text, nullable=True),
    Column("service", Text, nullable=False),
    Column("request_id", Text, nullable=True),
    Column("details", JSONB, nullable=False),
    Column("prev_hash", Text, nullable=False),
    Column("hash", Text, nullable=False),
    Column("signature", Text, nullable=False),
)
