"""Recovery on start: roll back every transaction the WAL shows as begun but not ended, empty `tmp/`.

Rolling back is always safe here: a transaction without a commit record was never acknowledged, so the
client either got an error or no answer, and "fully absent" (or the before-image) is a correct outcome.
Every step is idempotent, so a crash during recovery is repaired by the next recovery.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field

from artstore_storage.storage._durable import fsync_dir, replace_durably
from artstore_storage.storage.attributes import FileAttributes
from artstore_storage.storage.layout import Layout
from artstore_storage.storage.wal import WalRecord, read_unfinished

# Index changes recovery needs: an attribute image to upsert, or None to delete the row.
IndexFixes = dict[uuid.UUID, FileAttributes | None]


@dataclass
class RecoveryReport:
    rolled_back: list[str] = field(default_factory=list)
    removed_temp_entries: int = 0
    index_fixes: IndexFixes = field(default_factory=dict)


def undo(layout: Layout, record: WalRecord) -> FileAttributes | None:
    """Undo one transaction on disk; return the attributes the index should hold afterwards."""
    assert record.file_id is not None
    file_id = uuid.UUID(record.file_id)
    data, attr = layout.data_path(file_id), layout.attr_path(file_id)
    before = FileAttributes.model_validate(record.before) if record.before else None
    if record.op == "create":
        # attr.json goes first so that a crash midway never leaves metadata pointing at missing bytes.
        attr.unlink(missing_ok=True)
        data.unlink(missing_ok=True)
        layout.temp_path(record.tx, "attr").unlink(missing_ok=True)  # a place that failed midway
        if data.parent.exists():
            fsync_dir(data.parent)
        return None
    if record.op == "delete":
        for trashed, home in (
            (layout.temp_path(record.tx, "del.bin"), data),
            (layout.temp_path(record.tx, "del.attr"), attr),
        ):
            if trashed.exists():
                os.replace(trashed, home)
        fsync_dir(data.parent)
        return before
    if record.op == "update" and before is not None:
        replace_durably(layout.temp_path(record.tx, "undo.attr"), attr, before.to_json_bytes())
        return before
    return before


def empty_tmp(layout: Layout) -> int:
    removed = 0
    for entry in layout.tmp.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed += 1
    if removed:
        fsync_dir(layout.tmp)
    return removed


def recover(layout: Layout) -> RecoveryReport:
    """Blocking: run it in a worker thread before the element accepts requests."""
    report = RecoveryReport()
    for record in reversed(read_unfinished(layout.wal)):
        if record.file_id is None:
            continue
        report.index_fixes[uuid.UUID(record.file_id)] = undo(layout, record)
        report.rolled_back.append(record.tx)
    report.removed_temp_entries = empty_tmp(layout)
    return report
