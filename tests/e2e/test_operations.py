"""The README's backup and restore of a storage element, followed step by step on a dev cluster."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.e2e._devup import DevUp

pytestmark = pytest.mark.e2e


def _store(cluster: DevUp, content: bytes, name: str) -> str:
    stored = cluster.upload(content, name)
    assert stored.status_code == 201, stored.text
    assert stored.json()["storage_element_id"] == "se-rw"
    return str(stored.json()["file_id"])


def _reconcile(cluster: DevUp, **options: bool) -> dict[str, Any]:
    with cluster.client(cluster.element_url("se-rw")) as client:
        answer = client.post("/maintenance/reconcile", json=options)
    assert answer.status_code == 200, answer.text
    report: dict[str, Any] = answer.json()
    return report


def _listed(cluster: DevUp) -> list[str]:
    with cluster.client(cluster.element_url("se-rw")) as client:
        return [item["file_id"] for item in client.get("/files").json()["items"]]


def _read(cluster: DevUp, file_id: str) -> tuple[int, bytes]:
    with cluster.client(cluster.element_url("se-rw")) as client:
        answer = client.get(f"/files/{file_id}")
    return answer.status_code, answer.content


def test_a_stopped_elements_copy_restores_it_as_it_was(dev_up, tmp_path: Path) -> None:
    cluster = dev_up()
    cluster.start()
    kept = _store(cluster, b"in the backup", "kept.txt")
    assert cluster.terminate() == 0

    backup = tmp_path / "backup-se-rw"
    shutil.copytree(cluster.data_dir / "se-rw", backup, symlinks=True)  # cp -a

    later = DevUp(cluster.data_dir, cluster.base_port, cluster.env, name="after-backup")
    try:
        later.start()
        newer = _store(later, b"after the backup", "newer.txt")
        assert sorted(_listed(later)) == sorted([kept, newer])
        assert later.terminate() == 0
    finally:
        later.cleanup()

    # Restore: the copy back in place of the data directory, start, then repair and rebuild the index.
    shutil.rmtree(cluster.data_dir / "se-rw")
    shutil.copytree(backup, cluster.data_dir / "se-rw", symlinks=True)
    restored = DevUp(cluster.data_dir, cluster.base_port, cluster.env, name="restored")
    try:
        restored.start()
        drift = _reconcile(restored, repair=False)
        assert drift["consistent"] is False  # the index still names the file stored after the copy
        assert newer in str(drift["issues"])

        repaired = _reconcile(restored, repair=True, rebuild_index=True)
        assert repaired["checked_files"] == 1
        assert _reconcile(restored)["consistent"] is True
        assert _listed(restored) == [kept]
        assert _read(restored, kept) == (200, b"in the backup")
        assert _read(restored, newer)[0] == 404
        # The element takes uploads again.
        assert _read(restored, _store(restored, b"after the restore", "again.txt")) == (
            200,
            b"after the restore",
        )
    finally:
        restored.cleanup()
