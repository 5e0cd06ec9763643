"""The admin module's settings (ARTSTORE_ADMIN_*), validated at start."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from artstore_common.settings import Audience, SchemaName, ServiceSettings


class AdminSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ARTSTORE_ADMIN_", extra="ignore", validate_default=True)

    public_url: str | None = Field(
        default=None,
        description="the URL clients use to reach this admin (metadata, JWKS); from host:port if unset",
    )
    database_schema: SchemaName = Field(
        default="admin",
        description="PostgreSQL schema of the admin's tables (the catalog the query modules read)",
    )
    jwt_audience: Audience = "admin"

    # Keys and tokens (DESIGN section 2).
    key_encryption_key: SecretStr | None = Field(
        default=None,
        description="base64 of 32 random bytes; encrypts signing keys at rest (AES-GCM); required to serve",
    )
    token_lifetime_seconds: int = Field(
        default=1800, ge=60, le=86400, description="how long an access token is valid after it was issued"
    )
    key_rotation_seconds: int = Field(
        default=86400, ge=60, description="age at which the signing key is replaced by a new one"
    )
    key_grace_seconds: int = Field(
        default=3600, ge=1, description="how long a retired key stays published; longer than a token lives"
    )
    key_check_seconds: float = Field(default=60.0, gt=0, description="how often rotation is due-checked")

    # Service accounts.
    bootstrap_client_id: str = Field(
        default="artstore-admin",
        pattern=r"^[A-Za-z0-9_.\-]{3,64}$",
        description="client id of the first ADMIN account, created on the first start with the secret below",
    )
    bootstrap_client_secret: SecretStr | None = Field(
        default=None, description="secret of the bootstrap ADMIN account created on first start"
    )
    bootstrap_is_system: bool = Field(
        default=False,
        description="the bootstrap account also gets `internal` (dev only: `artstore dev up` sets it so that "
        "the storage elements' write endpoints can be called with curl)",
    )
    secret_overlap_seconds: int = Field(
        default=3600, ge=0, description="how long a rotated-out secret keeps working"
    )
    secret_lifetime_days: int | None = Field(default=None, ge=1, description="default secret expiry")

    # Registry and discovery.
    se_poll_seconds: float = Field(default=10.0, gt=0, description="how often every element's /info is read")
    se_offline_poll_seconds: float = Field(
        default=1.0, gt=0, description="the shorter interval used while some element does not answer"
    )
    se_timeout_seconds: float = Field(
        default=3.0,
        gt=0,
        description="limit of each call to a storage element (/info polls, mode changes, undo)",
    )

    # Every ingester upload makes two saga calls; connections beyond the pool are opened and closed per use.
    database_pool_size: int = Field(
        default=32, ge=1, le=500, description="PostgreSQL connections kept open for requests"
    )

    # Sagas.
    saga_timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        description="a saga still `started` this long after its last heartbeat is taken for abandoned and undone",
    )
    saga_recovery_seconds: float = Field(
        default=30.0, gt=0, description="how often the recovery loop looks for abandoned or unfinished sagas"
    )

    # Audit.
    audit_signing_key: SecretStr | None = Field(
        default=None, description="HMAC key that signs audit records; the key encryption key's if unset"
    )

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
