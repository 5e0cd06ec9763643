"""The ingester's settings (ARTSTORE_INGESTER_*), validated at start."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from artstore_common.settings import ServiceSettings


class IngesterSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ARTSTORE_INGESTER_", extra="ignore", validate_default=True)

    port: int = Field(default=8020, ge=1, le=65535)
    jwt_audience: str = "ingester"

    admin_url: str | None = Field(default=None, description="the admin's base URL; required to serve")
    client_id: str | None = Field(
        default=None, description="this ingester's system account (role USER, is_system); required to serve"
    )
    client_secret: SecretStr | None = None

    max_upload_bytes: int = Field(
        default=1 << 40, ge=0, description="the largest file accepted; a larger body is refused with 413"
    )
    max_field_bytes: int = Field(default=64 * 1024, ge=1024, description="the largest multipart text field")
    default_ttl_days: int = Field(
        default=30, ge=1, description="how long a temporary file is kept when the upload names no ttl_days"
    )

    se_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    se_timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        description="longest wait for a storage element between two bytes or for its answer",
    )
    admin_timeout_seconds: float = Field(default=10.0, gt=0)
    complete_attempts: int = Field(
        default=3, ge=1, description="how often the saga's completion is tried before the upload fails"
    )
    saga_heartbeat_seconds: float = Field(
        default=60.0, gt=0, description="how often a running upload tells the admin its saga is alive"
    )

    circuit_failure_threshold: int = Field(default=5, ge=1)
    circuit_recovery_seconds: float = Field(default=60.0, gt=0)

    discovery_fallback_path: Path | None = Field(
        default=None, description="where the last discovery snapshot is kept for starts while Redis is down"
    )

    rate_limit_per_minute: int = Field(default=100, ge=0, description="0 turns rate limiting off")
    rate_limit_burst: int = Field(default=150, ge=1)
