"""Which directories an upload fsyncs after renaming into its shard (files/ab/cd/), and who creates it."""

from __future__ import annotations

import uuid
from pathlib import Path

from artstore_storage.storage.layout import Layout
from artstore_storage.storage.placing import Placement, place
from artstore_storage.storage.shards import ShardDirectories


def _id(prefix: str) -> uuid.UUID:
    return uuid.UUID(prefix + str(uuid.uuid4())[len(prefix) :])


def _to_sync(shards: ShardDirectories, file_id: uuid.UUID) -> tuple[Path, ...]:
    return tuple(Path(name) for name in shards.to_sync(file_id))


def test_a_shard_is_fsynced_into_its_parents_until_an_upload_has_settled_it(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.create()
    shards = ShardDirectories(layout)
    first, neighbour, cousin = _id("abcd"), _id("abcd"), _id("abef")

    # A new shard: its own entries, its entry in files/ab and files/ab's entry in files/.
    assert _to_sync(shards, first) == (layout.files / "ab" / "cd", layout.files / "ab", layout.files)

    # Another upload finds the shard before the first one's fsyncs are done: it must not trust the
    # directory to survive a crash, so it names the parents too.
    assert _to_sync(shards, neighbour) == (layout.files / "ab" / "cd", layout.files / "ab", layout.files)

    shards.settle(first)
    assert _to_sync(shards, neighbour) == (layout.files / "ab" / "cd",)
    # files/ab is settled, a new shard in it still needs its own entry there made durable.
    assert _to_sync(shards, cousin) == (layout.files / "ab" / "ef", layout.files / "ab")


def test_shards_found_on_disk_at_start_are_fsynced_once_more_before_they_are_trusted(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.create()
    (layout.files / "12" / "34").mkdir(parents=True)
    shards = ShardDirectories(layout)  # a restarted element knows nothing of what it made before
    file_id = _id("1234")
    assert _to_sync(shards, file_id) == (layout.files / "12" / "34", layout.files / "12", layout.files)
    shards.settle(file_id)
    assert _to_sync(shards, _id("1234")) == (layout.files / "12" / "34",)


def test_placing_into_a_missing_shard_creates_it_and_leaves_nothing_in_tmp(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.create()
    shards = ShardDirectories(layout)
    file_id = _id("5678")
    head = layout.temp_path("tx1", "data")
    head.write_bytes(b"written while streaming, ")  # a large upload's earlier buffers
    place(
        Placement(
            data_temp=str(head),
            tail=b"then the last bytes",
            attr_temp=layout.temp_name("tx1", "attr"),
            attributes=b'{"file_id": "..."}',
            data_final=layout.data_name(file_id),
            attr_final=layout.attr_name(file_id),
            sync_dirs=shards.to_sync(file_id),
        )
    )
    assert layout.data_path(file_id).read_bytes() == b"written while streaming, then the last bytes"
    assert layout.attr_path(file_id).read_bytes() == b'{"file_id": "..."}'
    assert list(layout.tmp.iterdir()) == []
