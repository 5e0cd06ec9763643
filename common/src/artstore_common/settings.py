"""Settings shared by every service. Each service subclasses with its own env prefix."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Fields every service has. `os.environ` is read here and nowhere else."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "INFO"

    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql://...), required to serve; `artstore dev up` sets it, "
        "starting an embedded PostgreSQL when ARTSTORE_DATABASE_URL is unset",
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description="Redis URL; without it the service runs but announces nothing; `artstore dev up` sets it",
    )
    redis_namespace: str = Field(
        default="artstore", pattern=r"^[A-Za-z0-9_.\-]{1,64}$", description="prefix of every Redis key"
    )
    jwks_url: str | None = Field(default=None, description="the admin's JWKS URL; required to serve")
    jwt_issuer: str = "artstore-admin"
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwks_refetch_seconds: float = Field(
        default=10.0, ge=0, description="minimum gap between JWKS fetches caused by an unknown kid"
    )

    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP endpoint for traces; tracing is off when unset"
    )
    shutdown_grace_seconds: int = Field(default=30, ge=0)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("log_level must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()
