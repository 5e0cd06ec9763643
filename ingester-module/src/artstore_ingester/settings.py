"""The ingester's settings (ARTSTORE_INGESTER_*), validated at start."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from artstore_common.settings import Audience, ClusterServiceSettings, Port


class IngesterSettings(ClusterServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ARTSTORE_INGESTER_", extra="ignore", validate_default=True)

    port: Port = 8020
    jwt_audience: Audience = "ingester"

    max_upload_bytes: int = Field(
        default=1 << 40, ge=0, description="the largest file accepted; a larger body is refused with 413"
    )
    max_field_bytes: int = Field(default=64 * 1024, ge=1024, description="the largest multipart text field")
    default_ttl_days: int = Field(
        default=30, ge=1, description="how long a temporary file is kept when the upload names no ttl_days"
    )

    se_timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        description="longest wait for a storage element between two bytes or for its answer",
    )
    complete_attempts: int = Field(
        default=3, ge=1, description="how often the saga's completion is tried before the upload fails"
    )
    saga_batch_size: int = Field(
        default=32,
        ge=1,
        le=100,
        description="most saga starts and completions of concurrent uploads sent to the admin in one request; "
        "1 sends each on its own",
    )
    saga_reservations: int = Field(
        default=32,
        ge=0,
        le=256,
        description="most upload sagas started ahead per storage element, so that an upload without an "
        "Idempotency-Key need not wait for its own; the ingester keeps as many as uploads run at once; "
        "0 starts every saga on demand",
    )
    saga_reservation_seconds: float = Field(
        default=30.0,
        gt=0,
        description="an upload saga started ahead and not used this long is released (the admin undoes "
        "it, with nothing to undo); never longer than a quarter of the admin's saga timeout, whatever this says",
    )
    saga_heartbeat_seconds: float = Field(
        default=60.0, gt=0, description="how often a running upload tells the admin its saga is alive"
    )
