"""Walk the files/ tree. Blocking: run in a worker thread."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from artstore_storage.storage.attributes import FileAttributes, TornAttributes, read_attributes
from artstore_storage.storage.layout import Layout

_NAME = re.compile(r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(bin|attr\.json)$")


@dataclass
class DiskScan:
    attributes: dict[uuid.UUID, FileAttributes] = field(default_factory=dict)
    data_files: set[uuid.UUID] = field(default_factory=set)
    torn: list[Path] = field(default_factory=list)
    stray: list[Path] = field(default_factory=list)

    @property
    def servable(self) -> dict[uuid.UUID, FileAttributes]:
        """Files a reader can get: attr.json and bytes both present."""
        return {fid: attrs for fid, attrs in self.attributes.items() if fid in self.data_files}


def _entries(layout: Layout) -> Iterator[Path]:
    for path in layout.files.rglob("*"):
        if path.is_file() or path.is_symlink():
            yield path


def scan(layout: Layout) -> DiskScan:
    result = DiskScan()
    for path in _entries(layout):
        match = _NAME.match(path.name)
        if match is None or path.is_symlink() or path.parent != layout.shard(uuid.UUID(match.group(1))):
            result.stray.append(path)
            continue
        file_id = uuid.UUID(match.group(1))
        if match.group(2) == "bin":
            result.data_files.add(file_id)
            continue
        try:
            result.attributes[file_id] = read_attributes(path)
        except TornAttributes:
            result.torn.append(path)
    return result
