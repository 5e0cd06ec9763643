"""The query module's settings (ARTSTORE_QUERY_*), validated at start."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from artstore_common.settings import Audience, ClusterServiceSettings, Port, SchemaName


class QuerySettings(ClusterServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ARTSTORE_QUERY_", extra="ignore", validate_default=True)

    port: Port = 8030
    jwt_audience: Audience = "query"

    database_schema: SchemaName = Field(
        default="admin",
        description="the schema of the admin's catalog (ARTSTORE_ADMIN_DATABASE_SCHEMA); read, never migrated",
    )
    database_pool_size: int = Field(
        default=10,
        ge=1,
        le=200,
        description="PostgreSQL connections kept open for searches and catalog reads",
    )

    l1_max_entries: int = Field(
        default=10_000, ge=0, description="files kept in process memory; 0 turns L1 off"
    )
    l1_ttl_seconds: float = Field(
        default=300.0, ge=0, description="how long a file's attributes are served from process memory"
    )
    l2_ttl_seconds: int = Field(default=3600, ge=1, description="how long a file's attributes stay in Redis")
    l3_ttl_seconds: float = Field(
        default=86_400.0,
        ge=0,
        description="age of a catalog row (synced_at) after which it is revalidated against the element's attr.json",
    )

    search_default_limit: int = Field(
        default=50, ge=1, le=1000, description="results per page when a search does not say"
    )
    search_max_limit: int = Field(
        default=1000, ge=1, le=10_000, description="the most results per page a search may ask for"
    )
    search_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=30,
        description="longest a search may run in PostgreSQL (at most the connection's 30 s command timeout)",
    )

    se_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="longest wait for a storage element between two bytes or for its answer",
    )
