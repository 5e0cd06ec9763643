"""Shard directories (`files/ab/cd/`): which entries an upload must fsync, and when one may be missing."""

from __future__ import annotations

import os
import uuid

from artstore_storage.storage.layout import Layout


class ShardDirectories:
    """Says which directories an upload must fsync after renaming its files into their shard.

    Always the shard itself, for the renames. A shard that another upload has just created may already be
    visible while its entry in its parent is not yet durable; an upload that merely finds it must fsync
    the parent too, or a crash could lose the directory and with it a file already acknowledged. Once an
    upload has fsynced them, a shard and its parent are settled for the life of the process.

    Both methods run on the event loop and touch no disk: the disk agent creates a missing shard when it
    is given more than one directory to fsync (storage/placing.py).
    """

    def __init__(self, layout: Layout) -> None:
        self._layout = layout
        self._files = str(layout.files)
        self._settled: set[str] = set()  # "ab" for files/ab, "abcd" for files/ab/cd

    def to_sync(self, file_id: uuid.UUID) -> tuple[str, ...]:
        """The directories to fsync after renaming into the shard; more than one: the shard may be missing."""
        text = str(file_id)
        shard = self._layout.shard_name(file_id)
        if text[0:4] in self._settled:
            return (shard,)
        if text[0:2] in self._settled:
            return (shard, os.path.dirname(shard))
        return (shard, os.path.dirname(shard), self._files)

    def settle(self, file_id: uuid.UUID) -> None:
        """Call once the directories `to_sync` named are fsynced."""
        text = str(file_id)
        self._settled.update((text[0:2], text[0:4]))
