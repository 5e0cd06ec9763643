"""Settings shared by every service. Each service subclasses with its own env prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Fields each service declares with a default of its own: the constraint and the words are written once here.
Port = Annotated[int, Field(ge=1, le=65535, description="TCP port to listen on")]
Audience = Annotated[str, Field(description="the `aud` a token must name to be accepted here")]
SCHEMA_NAME_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"
SchemaName = Annotated[str, Field(pattern=SCHEMA_NAME_PATTERN)]


class ServiceSettings(BaseSettings):
    """Fields every service has. `os.environ` is read here and nowhere else."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True)

    host: str = Field(
        default="127.0.0.1",
        description="address to listen on (0.0.0.0 for every interface, as in containers)",
    )
    port: Port = 8000
    log_level: str = Field(
        default="INFO", description="DEBUG, INFO, WARNING or ERROR; logs are JSON lines on stderr"
    )

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
    jwt_issuer: str = Field(default="artstore-admin", description="the `iss` every accepted token must carry")
    jwt_leeway_seconds: int = Field(
        default=30, ge=0, le=300, description="clock skew allowed when checking a token's exp, nbf and iat"
    )
    jwks_refetch_seconds: float = Field(
        default=10.0, ge=0, description="minimum gap between JWKS fetches caused by an unknown kid"
    )

    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP endpoint for traces; tracing is off when unset"
    )
    # Rate limits (DESIGN section 8), one budget per service account; the admin's per-account values win.
    rate_limit_per_minute: int = Field(
        default=100, ge=0, description="requests a minute per service account; 0 turns rate limiting off"
    )
    rate_limit_burst: int = Field(
        default=150,
        ge=1,
        description="requests an account may send at once before the per-minute rate applies",
    )
    shutdown_grace_seconds: int = Field(
        default=30,
        ge=0,
        description="on SIGTERM, how long requests in flight may run before they are cut off",
    )

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("log_level must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()


class ClusterServiceSettings(ServiceSettings):
    """Fields of the stateless services (ingester, query module) that act towards the cluster as a system
    account of their own and follow the discovery snapshot."""

    admin_url: str | None = Field(default=None, description="the admin's base URL; required to serve")
    client_id: str | None = Field(
        default=None, description="this service's own system account (is_system); required to serve"
    )
    client_secret: SecretStr | None = Field(
        default=None, description="the secret of that system account; required to serve"
    )
    admin_timeout_seconds: float = Field(
        default=10.0, gt=0, description="limit of each call to the admin (tokens, sagas, discovery fallback)"
    )
    se_connect_timeout_seconds: float = Field(
        default=3.0, gt=0, description="limit for opening a connection to a storage element"
    )
    circuit_failure_threshold: int = Field(
        default=5, ge=1, description="consecutive failures of one storage element that open its circuit"
    )
    circuit_recovery_seconds: float = Field(
        default=60.0, gt=0, description="how long an open circuit waits before its half-open probe call"
    )
    circuit_probe_seconds: float = Field(
        default=1.0,
        ge=0,
        description="while a circuit is open because its element was unreachable, how often the element's "
        "/health/ready is asked; a ready answer closes the circuit at once (0: wait out the recovery time)",
    )
    discovery_fallback_path: Path | None = Field(
        default=None, description="where the last discovery snapshot is kept for starts while Redis is down"
    )

    def missing(self, *fields: str) -> list[str]:
        """The environment variables of `fields` that are unset (by this class's env prefix)."""
        prefix = str(self.model_config.get("env_prefix", ""))
        return [f"{prefix}{name.upper()}" for name in fields if not getattr(self, name)]

    def cluster_account(self) -> tuple[str, str, SecretStr]:
        """admin URL, client id and secret, or a start-up error naming every one that is missing."""
        missing = self.missing("admin_url", "client_id", "client_secret")
        if missing:
            raise RuntimeError(f"{', '.join(missing)} not set (artstore dev up sets them for you)")
        assert self.admin_url is not None
        assert self.client_id is not None
        assert self.client_secret is not None
        return self.admin_url.rstrip("/"), self.client_id, self.client_secret
