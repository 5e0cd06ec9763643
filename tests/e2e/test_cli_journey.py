"""A person's session with the `artstore` command against `artstore dev up`, from a token to a clean stop."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.e2e._devup import ARTSTORE, alive, port_is_open, wait_until

pytestmark = pytest.mark.e2e

MiB = 1 << 20


def _artstore(
    env: dict[str, str], *args: str, cwd: Path, expect: int = 0, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [ARTSTORE, *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == expect, f"artstore {' '.join(args)}: {result.returncode}\n{result.stderr}"
    return result


def _json(env: dict[str, str], *args: str, cwd: Path) -> Any:
    return json.loads(_artstore(env, *args, "--json", cwd=cwd).stdout)


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


def test_a_session_with_the_command_line_from_token_to_sigterm(dev_up, tmp_path: Path) -> None:
    cluster = dev_up()
    ready = cluster.start()
    env = cluster.env | {"ARTSTORE_DATA_DIR": str(cluster.data_dir)}
    work = tmp_path / "work"
    work.mkdir()

    token = _artstore(env, "token", cwd=work).stdout.strip()
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
    _artstore(env, "download", stored["file_id"], "-o", str(copy), cwd=work)
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
        lines.append(_one_error_line(_artstore(env, "upload", str(small), cwd=work, expect=1)))
    assert all(line.split(":")[1].strip() in ("NO_STORAGE_ELEMENT", "MODE_NOT_ALLOWED") for line in lines), (
        lines
    )
    assert "se-rw" in lines[-1]  # which element and why

    # A temporary file goes to se-edit, where it may be deleted.
    draft = _json(env, "upload", str(small), "--retention", "temporary", "--ttl-days", "1", cwd=work)
    assert draft["storage_element_id"] == "se-edit"
    _artstore(env, "delete", draft["file_id"], cwd=work)
    gone = _artstore(env, "info", draft["file_id"], cwd=work, expect=1)
    assert _one_error_line(gone).startswith("artstore: NOT_FOUND:")

    # A READONLY account may read but not upload.
    reader = _json(env, "accounts", "create", "journey-reader", "--role", "READONLY", cwd=work)
    as_reader = env | {
        "ARTSTORE_CLIENT_ID": reader["client_id"],
        "ARTSTORE_CLIENT_SECRET": reader["client_secret"],
    }
    assert _json(as_reader, "info", stored["file_id"], cwd=work)["sha256"] == digest
    denied = _artstore(as_reader, "upload", str(small), "--retention", "temporary", cwd=work, expect=1)
    assert _one_error_line(denied).startswith("artstore: INSUFFICIENT_SCOPE:")

    verified = _artstore(env, "audit", "verify", cwd=work)
    assert "intact" in verified.stdout

    processes = [psutil.Process(cluster.pid), *cluster.children()]
    ports = cluster.ports()
    assert cluster.terminate() == 0
    wait_until(lambda: not alive(processes), within=15, what="no process of the cluster left")
    assert not [port for port in ports if port_is_open(port)]
    assert ready["data_dir"] == str(cluster.data_dir.resolve())
