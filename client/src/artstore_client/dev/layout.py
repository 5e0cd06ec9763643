"""Where a dev cluster keeps its state, all under one data directory, and which ports it uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Offsets from the base port, as DESIGN section 10 fixes them (admin at N, SEs at N+10.., ingester N+20,
# query N+30).
ADMIN_OFFSET = 0
STORAGE_ELEMENTS = (("se-edit", "edit", 10), ("se-rw", "rw", 11))
INGESTER_OFFSET = 20
QUERY_OFFSET = 30


@dataclass(frozen=True)
class StorageElementSpec:
    element_id: str
    mode: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class DevLayout:
    root: Path
    base_port: int

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def redis(self) -> Path:
        return self.root / "redis"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def admin_secrets(self) -> Path:
        """The admin's key encryption key and bootstrap account, made on first start (mode 0600)."""
        return self.root / "admin" / "secrets.json"

    @property
    def ingester_dir(self) -> Path:
        return self.root / "ingester"

    @property
    def ingester_account(self) -> Path:
        """The ingester's system account, made on first start (mode 0600)."""
        return self.ingester_dir / "account.json"

    @property
    def ingester_discovery(self) -> Path:
        """The ingester's last discovery snapshot, for a start while Redis is down."""
        return self.ingester_dir / "discovery.json"

    @property
    def query_dir(self) -> Path:
        return self.root / "query"

    @property
    def query_account(self) -> Path:
        """The query module's system account, made on first start (mode 0600)."""
        return self.query_dir / "account.json"

    @property
    def query_discovery(self) -> Path:
        """The query module's last discovery snapshot, for a start while Redis is down."""
        return self.query_dir / "discovery.json"

    @property
    def lock_file(self) -> Path:
        return self.root / "dev-up.lock"

    @property
    def admin_port(self) -> int:
        return self.base_port + ADMIN_OFFSET

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def ingester_port(self) -> int:
        return self.base_port + INGESTER_OFFSET

    @property
    def ingester_url(self) -> str:
        return f"http://127.0.0.1:{self.ingester_port}"

    @property
    def query_port(self) -> int:
        return self.base_port + QUERY_OFFSET

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.query_port}"

    @property
    def storage_elements(self) -> list[StorageElementSpec]:
        return [StorageElementSpec(i, mode, self.base_port + offset) for i, mode, offset in STORAGE_ELEMENTS]

    def element_dir(self, element_id: str) -> Path:
        return self.root / element_id

    def ports(self) -> list[int]:
        elements = [se.port for se in self.storage_elements]
        return [self.admin_port, *elements, self.ingester_port, self.query_port]

    def create(self) -> None:
        for directory in (self.root, self.logs, self.admin_secrets.parent, self.ingester_dir, self.query_dir):
            directory.mkdir(parents=True, exist_ok=True)
