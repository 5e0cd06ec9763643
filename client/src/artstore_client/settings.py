"""Settings of the command line, read from ARTSTORE_* variables (the only place that reads them)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ClientSettings(BaseSettings):
    """Where the cluster is and who the client is; each unset value comes from the credentials file."""

    model_config = SettingsConfigDict(env_prefix="ARTSTORE_", extra="ignore")

    admin_url: str | None = Field(
        default=None, description="the admin's base URL (tokens, accounts, elements)"
    )
    ingester_url: str | None = Field(
        default=None, description="the ingester's base URL (uploads, updates, deletes)"
    )
    query_url: str | None = Field(
        default=None, description="the query module's base URL (search, info, downloads)"
    )
    client_id: str | None = Field(default=None, description="the service account the client acts as")
    client_secret: SecretStr | None = Field(default=None, description="that account's secret")
    data_dir: Path | None = Field(
        default=None,
        description="where `artstore dev up` keeps its data and credentials.json (ARTSTORE_DATA_DIR)",
    )


class DevSettings(BaseSettings):
    """What `artstore dev up` takes from the environment: existing servers instead of embedded ones."""

    model_config = SettingsConfigDict(env_prefix="ARTSTORE_", extra="ignore")

    database_url: SecretStr | None = Field(
        default=None, description="PostgreSQL to use (postgresql://...); embedded PostgreSQL when unset"
    )
    redis_url: SecretStr | None = Field(default=None, description="Redis to use; embedded Redis when unset")
    redis_namespace: str = Field(
        default="artstore", pattern=r"^[A-Za-z0-9_.\-]{1,64}$", description="prefix of every Redis key"
    )
