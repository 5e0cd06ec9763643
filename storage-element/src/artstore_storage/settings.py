from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from artstore_common.settings import SCHEMA_NAME_PATTERN, Audience, Port, ServiceSettings

Mode = Literal["edit", "rw", "ro", "ar"]


class StorageSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ARTSTORE_SE_", extra="ignore", validate_default=True)

    port: Port = 8010
    element_id: str = Field(
        default="se-01",
        pattern=r"^[a-z0-9][a-z0-9\-]{0,39}$",
        description="this element's id in the registry, its files' attr.json and its index schema",
    )
    name: str = Field(
        default="", description="a name for people (registry, `artstore se list`); the id if empty"
    )
    public_url: str | None = Field(default=None, description="URL others use to reach this element")
    priority: int = Field(
        default=100,
        description="upload choice: among elements that can take a file, the highest priority first",
    )
    data_dir: Path = Field(
        default=Path(".artstore/se-01"), description="where files, attr.json sidecars, the WAL and tmp/ live"
    )
    mode: Mode = Field(default="rw", description="mode on first start; later only config-only changes apply")
    allow_leave_archive: bool = Field(
        default=False, description="explicit override that lets a configured mode replace a persisted 'ar'"
    )
    quota_bytes: int | None = Field(default=None, ge=0, description="capacity limit; the disk's when unset")
    max_file_size: int = Field(default=1 << 40, ge=0, description="largest single upload in bytes")
    jwt_audience: Audience = "storage"
    heartbeat_seconds: float = Field(
        default=10.0, gt=0, description="how often the element publishes its mode and capacity on Redis"
    )
    wal_segment_bytes: int = Field(
        default=4 << 20,
        ge=4096,
        description="size of one write-ahead log segment file (zero-filled in advance)",
    )
    io_threads: int = Field(
        default=32,
        ge=2,
        le=512,
        description="worker threads for the element's other disk I/O: streamed writes and hashing of large "
        "uploads, reads, rollbacks",
    )
    agent_threads: int = Field(
        default=8,
        ge=1,
        le=64,
        description="threads of the disk agent, the helper process that makes finished uploads durable and "
        "renames them into place (its own GIL: the event loop never waits for them); the WAL has one more "
        "thread of its own there",
    )
    write_chunk_bytes: int = Field(
        default=1 << 20,
        ge=4096,
        description="bytes of an upload collected in memory before each write to disk",
    )
    read_chunk_bytes: int = Field(
        default=1 << 20, ge=4096, description="bytes read from disk per download chunk"
    )
    # Not SchemaName: inside `| None` its pattern would still be checked but not shown in the reference.
    database_schema: str | None = Field(
        default=None, pattern=SCHEMA_NAME_PATTERN, description="index schema; se_<element_id> if unset"
    )

    @property
    def schema_name(self) -> str:
        return self.database_schema or "se_" + self.element_id.replace("-", "_")
