"""Reconcile: compare attr.json files, data files and the index; optionally repair and rebuild.

Repair never deletes: whatever cannot be served (stray files, bytes without attributes, attributes without
bytes, unreadable attributes) moves to `quarantine/` for a person to look at. The index is then rebuilt
from the attr.json files, which are the truth.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from artstore_storage.repositories import index
from artstore_storage.services._db import index_transaction
from artstore_storage.services.files import FileService
from artstore_storage.storage._durable import ensure_dir
from artstore_storage.storage.attributes import FileAttributes
from artstore_storage.storage.layout import Layout
from artstore_storage.storage.scan import DiskScan, scan

_REBUILD_BATCH = 500


@dataclass(frozen=True)
class ReconcileOptions:
    repair: bool = False
    rebuild_index: bool = False
    verify_checksums: bool = True


def _issue(
    kind: str, *, file_id: uuid.UUID | None = None, path: Path | None = None, detail: str = ""
) -> dict[str, Any]:
    issue: dict[str, Any] = {"kind": kind, "detail": detail}
    if file_id is not None:
        issue["file_id"] = str(file_id)
    if path is not None:
        issue["path"] = str(path)
    return issue


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class Reconciler:
    def __init__(self, layout: Layout, files: FileService) -> None:
        self.layout = layout
        self.files = files

    async def run(self, options: ReconcileOptions) -> dict[str, Any]:
        disk = await asyncio.to_thread(scan, self.layout)
        busy = self.files.busy_file_ids
        disk_issues = await asyncio.to_thread(self._check_disk, disk, options.verify_checksums, busy)
        repaired: list[dict[str, Any]] = []
        if options.repair:
            repaired = await asyncio.to_thread(self._quarantine, disk_issues)
            disk = await asyncio.to_thread(scan, self.layout)
        servable = disk.servable
        index_issues, rebuilt = await self._index(
            servable, busy, rebuild=options.repair or options.rebuild_index
        )
        if options.repair or options.rebuild_index:
            self.files.recount(servable)
        issues = disk_issues + index_issues
        return {
            "storage_element_id": self.files.element_id,
            "checked_files": len(disk.attributes),
            "consistent": not issues,
            "summary": dict(Counter(i["kind"] for i in issues)),
            "issues": issues,
            "repaired": repaired,
            "index": rebuilt,
        }

    def _check_disk(self, disk: DiskScan, verify: bool, busy: frozenset[uuid.UUID]) -> list[dict[str, Any]]:
        issues = [_issue("stray_file", path=p, detail="not a file ArtStore wrote") for p in disk.stray]
        issues += [
            _issue("invalid_attributes", path=p, detail="attr.json cannot be parsed") for p in disk.torn
        ]
        torn_ids = {uuid.UUID(p.name.split(".")[0]) for p in disk.torn}
        for file_id in sorted(disk.data_files - disk.attributes.keys() - torn_ids - busy, key=str):
            issues.append(
                _issue(
                    "missing_attributes",
                    file_id=file_id,
                    path=self.layout.data_path(file_id),
                    detail="data without attr.json",
                )
            )
        for file_id, attrs in sorted(disk.attributes.items(), key=lambda item: str(item[0])):
            if file_id in busy:
                continue
            data = self.layout.data_path(file_id)
            if file_id not in disk.data_files:
                issues.append(
                    _issue(
                        "missing_data",
                        file_id=file_id,
                        path=self.layout.attr_path(file_id),
                        detail="attr.json without its .bin",
                    )
                )
                continue
            size = data.stat().st_size
            if size != attrs.size_bytes:
                issues.append(
                    _issue(
                        "size_mismatch",
                        file_id=file_id,
                        path=data,
                        detail=f"attr.json says {attrs.size_bytes} bytes, the file has {size}",
                    )
                )
            elif verify and _sha256_of(data) != attrs.sha256:
                issues.append(
                    _issue(
                        "checksum_mismatch",
                        file_id=file_id,
                        path=data,
                        detail="the bytes no longer match the recorded sha256",
                    )
                )
        return issues

    def _quarantine(self, issues: list[dict[str, Any]]) -> list[dict[str, Any]]:
        target = self.layout.quarantine / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        moved = []
        for issue in issues:
            if issue["kind"] not in {
                "stray_file",
                "invalid_attributes",
                "missing_attributes",
                "missing_data",
            }:
                continue  # damaged bytes stay where they are, reported, for a restore from backup
            source = Path(issue["path"])
            destination = target / source.relative_to(self.layout.files)
            ensure_dir(destination.parent)
            os.replace(source, destination)
            moved.append({"kind": issue["kind"], "from": str(source), "to": str(destination)})
        return moved

    async def _index(
        self, servable: dict[uuid.UUID, FileAttributes], busy: frozenset[uuid.UUID], *, rebuild: bool
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        issues: list[dict[str, Any]] = []
        result: dict[str, Any] = {"rebuilt": False}
        async with index_transaction(self.files.engine) as connection:
            table_missing = not await index.table_exists(connection)
            indexed: dict[uuid.UUID, dict[str, Any]] = {}
            if table_missing:
                issues.append(_issue("index_table_missing", detail="the index table does not exist"))
                if rebuild:
                    await index.recreate_table(connection)
            else:
                indexed = await index.all_attributes(connection)
            for file_id, attrs in servable.items():
                if file_id in busy or table_missing:
                    continue
                row = indexed.get(file_id)
                if row is None:
                    issues.append(
                        _issue("index_missing", file_id=file_id, detail="on disk, not in the index")
                    )
                elif row != attrs.model_dump(mode="json"):
                    issues.append(
                        _issue("index_stale", file_id=file_id, detail="index differs from attr.json")
                    )
            orphans = [fid for fid in indexed if fid not in servable and fid not in busy]
            issues += [_issue("index_orphan", file_id=f, detail="in the index, not on disk") for f in orphans]
            if rebuild:
                batch = list(servable.values())
                for start in range(0, len(batch), _REBUILD_BATCH):
                    await index.upsert_many(connection, batch[start : start + _REBUILD_BATCH])
                await index.remove_many(connection, orphans)
                result = {"rebuilt": True, "upserted": len(batch), "removed": len(orphans)}
        return issues, result
