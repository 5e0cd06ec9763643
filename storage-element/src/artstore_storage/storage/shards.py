"""Shard directories (`files/ab/cd/`): created on first use, and which entries an upload must fsync."""

from __future__ import annotations

import uuid
from pathlib import Path

from artstore_storage.storage._durable import make_dirs
from artstore_storage.storage.layout import Layout


class ShardDirectories:
    """Says which directories an upload must fsync after renaming its files into their shard.

    Always the shard itself, for the renames. A shard that another upload has just created may already be
    visible while its entry in its parent is not yet durable; an upload that merely finds it must fsync
    the parent too, or a crash could lose the directory and with it a file already acknowledged. Once an
    upload has fsynced them, a shard and its parent are settled for the life of the process.

    The methods block (they touch the disk) except `settle`; the set of settled prefixes is shared by the
    place threads, whose single adds and lookups the GIL keeps whole.
    """

    def __init__(self, layout: Layout) -> None:
        self._layout = layout
        self._settled: set[str] = set()  # "ab" for files/ab, "abcd" for files/ab/cd

    def prepare(self, file_id: uuid.UUID) -> list[Path]:
        """Create the shard if it is missing; return the directories to fsync after renaming into it."""
        text = str(file_id)
        shard = self._layout.shard(file_id)
        if text[0:4] in self._settled:
            return [shard]
        make_dirs(shard)
        directories = [shard, shard.parent]
        if text[0:2] not in self._settled:
            directories.append(self._layout.files)
        return directories

    def settle(self, file_id: uuid.UUID) -> None:
        """Call once the directories `prepare` named are fsynced."""
        text = str(file_id)
        self._settled.update((text[0:2], text[0:4]))
