"""The element as a whole: its mode, the seal manifest, and the `/info` document."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

from artstore_storage import __version__
from artstore_storage.metrics import CAPACITY, FILES
from artstore_storage.services.announcer import Announcer
from artstore_storage.services.files import FileService
from artstore_storage.settings import StorageSettings
from artstore_storage.storage._durable import replace_durably
from artstore_storage.storage.layout import Layout
from artstore_storage.storage.modes import ALLOWED, ModeStore, check_transition
from artstore_storage.storage.scan import scan

_log = logging.getLogger("artstore.storage.element")


class ElementService:
    def __init__(
        self, settings: StorageSettings, layout: Layout, files: FileService, announcer: Announcer
    ) -> None:
        self.settings = settings
        self.layout = layout
        self.files = files
        self.announcer = announcer
        self.mode_store = ModeStore(layout.mode_file)
        self._transition_lock = asyncio.Lock()

    @property
    def mode(self) -> str:
        return self.files.mode

    def info(self) -> dict[str, Any]:
        capacity = self.files.capacity.snapshot()
        for kind, value in capacity.as_dict().items():
            CAPACITY.labels(self.settings.element_id, kind).set(value)
        FILES.labels(self.settings.element_id).set(self.files.file_count)
        return {
            "id": self.settings.element_id,
            "name": self.settings.name or self.settings.element_id,
            "url": self.settings.public_url or f"http://{self.settings.host}:{self.settings.port}",
            "mode": self.mode,
            "status": "online",
            "priority": self.settings.priority,
            "capacity": capacity.as_dict(),
            "file_count": self.files.file_count,
            "allowed_operations": sorted(ALLOWED[self.mode]),
            "max_file_size": self.settings.max_file_size,
            "version": __version__,
        }

    async def change_mode(self, target: str) -> dict[str, Any]:
        async with self._transition_lock:
            current = self.mode
            check_transition(current, target)
            # New writes are refused from here on; the ones already running finish first, so a sealed
            # element's manifest and its files agree.
            self.files.mode = target
            try:
                async with asyncio.timeout(self.settings.shutdown_grace_seconds or 30):
                    await self.files.drain_writes()
                manifest = await asyncio.to_thread(self._seal) if target == "ar" else None
                await asyncio.to_thread(self.mode_store.save, target, f"API transition from {current}")
            except BaseException:
                self.files.mode = current
                raise
        _log.info("mode changed", extra={"from_mode": current, "to_mode": target})
        await self.announcer.beat(self.info())
        result: dict[str, Any] = {"id": self.settings.element_id, "previous_mode": current, "mode": target}
        if manifest is not None:
            result["manifest"] = {"path": self.layout.manifest_file.name, **manifest}
        return result

    def _seal(self) -> dict[str, Any]:
        disk = scan(self.layout)
        sealed = sorted(disk.attributes.items(), key=lambda item: str(item[0]))
        entries: list[dict[str, Any]] = [
            {"file_id": str(file_id), "size_bytes": attrs.size_bytes, "sha256": attrs.sha256}
            for file_id, attrs in sealed
        ]
        canonical = json.dumps(entries, separators=(",", ":"), sort_keys=True).encode()
        document = {
            "storage_element_id": self.settings.element_id,
            "sealed_at": datetime.now(UTC).isoformat(),
            "file_count": len(entries),
            "total_bytes": sum(attrs.size_bytes for _, attrs in sealed),
            "digest": {
                "algorithm": "sha256",
                "over": "the files list as canonical JSON (sorted keys, no spaces)",
                "value": hashlib.sha256(canonical).hexdigest(),
            },
            "files": entries,
        }
        replace_durably(
            self.layout.manifest_file.with_suffix(".json.tmp"),
            self.layout.manifest_file,
            json.dumps(document, indent=1).encode(),
        )
        return {"file_count": document["file_count"], "digest": document["digest"]}
