"""A person's session with the `artstore` command against `artstore dev up`, from a token to a clean stop."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.e2e._devup import alive, port_is_open, wait_until
from tests.support.cli import Run, artstore

pytestmark = pytest.mark.e2e

MiB = 1 << 20


def _run(env: dict[str, str], *args: str, cwd: Path) -> Run:
    run = artstore(*args, env=env, cwd=cwd, timeout=300)
    assert run.status == 0, f"artstore {' '.join(args)}: {run.status}\n{run.err}"
    return run


def _json(env: dict[str, str], *args: str, cwd: Path) -> Any:
    return json.loads(_run(env, *args, "--json", cwd=cwd).out)


def _refused(env: dict[str, str], *args: str, cwd: Path) -> str:
    """The one stderr line of a refused command (exit status 1, nothing on stdout, no traceback)."""
    return artstore(*args, env=env, cwd=cwd, timeout=300).error_line()


def test_a_session_with_the_command_line_from_token_to_sigterm(dev_up, tmp_path: Path) -> None:
    cluster = dev_up()
    ready = cluster.start()
    env = cluster.env | {"ARTSTORE_DATA_DIR": str(cluster.data_dir)}
    work = tmp_path / "work"
    work.mkdir()

    token = _run(env, "token", cwd=work).out.strip()
    assert token.count(".") == 2  # a JWT

    document = work / "scan.pdf"
    with document.open("wb") as handle:
        for _ in range(50):
            handle.write(os.urandom(MiB))
    digest = hashlib.sha256(document.read_bytes()).hexdigest()
    stored = _json(
        env, "upload", str(document), "--tag", "journey", "--content-type", "application/pdf", cwd=work
    )
    assert stored["size_bytes"] == 50 * MiB
    assert stored["sha256"] == digest
    assert stored["storage_element_id"] == "se-rw"  # permanent by default

    found = _json(env, "search", "--tag", "journey", cwd=work)
    assert [item["file_id"] for item in found] == [stored["file_id"]]

    copy = work / "copy.pdf"
    _run(env, "download", stored["file_id"], "-o", str(copy), cwd=work)
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == digest

    # Seal se-rw: the next permanent upload has nowhere to go and says so on one line.
    changed = _json(env, "se", "mode", "se-rw", "ro", cwd=work)
    assert changed["mode"] == "ro"
    modes = {element["id"]: element["mode"] for element in _json(env, "se", "list", cwd=work)}
    assert modes == {"se-edit": "edit", "se-rw": "ro"}
    small = work / "note.txt"
    small.write_text("one more permanent note\n")
    # The ingester learns of the new mode from the discovery snapshot a moment after the admin answered;
    # meanwhile the element itself refuses. Either way every attempt is one clear line and exit status 1.
    lines: list[str] = []
    deadline = time.monotonic() + 10
    while not lines or not lines[-1].startswith("artstore: NO_STORAGE_ELEMENT:"):
        assert time.monotonic() < deadline, f"uploads not refused with NO_STORAGE_ELEMENT: {lines}"
        lines.append(_refused(env, "upload", str(small), cwd=work))
    assert all(line.split(":")[1].strip() in ("NO_STORAGE_ELEMENT", "MODE_NOT_ALLOWED") for line in lines), (
        lines
    )
    assert "se-rw" in lines[-1]  # which element and why

    # A temporary file goes to se-edit, where it may be deleted.
    draft = _json(env, "upload", str(small), "--retention", "temporary", "--ttl-days", "1", cwd=work)
    assert draft["storage_element_id"] == "se-edit"
    _run(env, "delete", draft["file_id"], cwd=work)
    assert _refused(env, "info", draft["file_id"], cwd=work).startswith("artstore: NOT_FOUND:")

    # A READONLY account may read but not upload.
    reader = _json(env, "accounts", "create", "journey-reader", "--role", "READONLY", cwd=work)
    as_reader = env | {
        "ARTSTORE_CLIENT_ID": reader["client_id"],
        "ARTSTORE_CLIENT_SECRET": reader["client_secret"],
    }
    assert _json(as_reader, "info", stored["file_id"], cwd=work)["sha256"] == digest
    denied = _refused(as_reader, "upload", str(small), "--retention", "temporary", cwd=work)
    assert denied.startswith("artstore: INSUFFICIENT_SCOPE:")

    assert "intact" in _run(env, "audit", "verify", cwd=work).out

    processes = [psutil.Process(cluster.pid), *cluster.children()]
    ports = cluster.ports()
    assert cluster.terminate() == 0
    wait_until(lambda: not alive(processes), within=15, what="no process of the cluster left")
    assert not [port for port in ports if port_is_open(port)]
    assert ready["data_dir"] == str(cluster.data_dir.resolve())
