"""The transfer progress bar: drawn on stderr for a person at a terminal (a pseudo-terminal here), and never
in a pipe, with --json or with -q."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import ARTSTORE, artstore, base_env
from tests.support.files import generated

SIZE = 6 * 1024 * 1024
SIZE_SHOWN = "6.0/6.0 MiB"  # what the bar says once the whole file went through
RATE = re.compile(r"\d+(\.\d+)? [kMG]?B/s")
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]|\x1b[=>]|\r")


@dataclass
class TerminalRun:
    status: int
    stdout: bytes
    terminal: str  # what stderr drew on the terminal, without the escape sequences


def in_terminal(
    *args: str | Path, env: dict[str, str], stdin: bytes | None = None, cwd: Path | None = None
) -> TerminalRun:
    """Run `artstore` with stderr on a pseudo-terminal of 120 columns (as a person sees it) and stdout piped."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    with subprocess.Popen(
        [ARTSTORE, *map(str, args)],
        env={**base_env(), **env, "TERM": "xterm-256color", "COLUMNS": "120"},
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
        cwd=cwd,
    ) as process:
        os.close(terminal)
        if stdin is not None:
            assert process.stdin is not None
            process.stdin.write(stdin)
            process.stdin.close()
        drawn = _drain(controller, process)
        assert process.stdout is not None
        stdout = process.stdout.read()
        status = process.wait(30)
    os.close(controller)
    return TerminalRun(status, stdout, ANSI.sub("", drawn.decode(errors="replace")))


def _drain(controller: int, process: subprocess.Popen[bytes], within: float = 60) -> bytes:
    """Everything written to the terminal until the process closes it (read all along: a full terminal
    buffer would block the writer)."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: every process holding the terminal has closed it
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif process.poll() is not None:
            break
    else:
        process.kill()
        raise AssertionError(f"artstore did not finish within {within} s")
    return b"".join(chunks)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("progress") / "big.bin"
    with path.open("wb") as handle:
        for piece in generated(SIZE):
            handle.write(piece)
    return path


def _assert_bar(terminal: str, label: str) -> None:
    """The final state of the bar: the name, 100 %, the bytes and a rate."""
    assert "Traceback" not in terminal, terminal
    assert label in terminal, terminal
    assert "100%" in terminal, terminal
    assert SIZE_SHOWN in terminal, terminal
    assert RATE.search(terminal), terminal
    assert "ETA" in terminal, terminal


def test_upload_and_download_draw_a_progress_bar_at_a_terminal(
    client_env: dict[str, str], big_file: Path, tmp_path: Path
) -> None:
    uploaded = in_terminal("upload", big_file, env=client_env)
    assert uploaded.status == 0, uploaded.terminal
    _assert_bar(uploaded.terminal, "big.bin")
    line = uploaded.stdout.decode()
    assert line.count("\n") == 1  # stdout holds the result line only, the bar went to the terminal
    file_id = line.split()[0]

    target = tmp_path / "back.bin"
    downloaded = in_terminal("download", file_id, "-o", target, env=client_env)
    assert downloaded.status == 0, downloaded.terminal
    _assert_bar(downloaded.terminal, "back.bin")
    assert hashlib.sha256(target.read_bytes()).hexdigest() == line.split("sha256 ")[1].split()[0]


def test_a_stream_of_unknown_length_ends_at_100_percent(client_env: dict[str, str], big_file: Path) -> None:
    uploaded = in_terminal(
        "upload", "-", "--name", "streamed.bin", env=client_env, stdin=big_file.read_bytes()
    )
    assert uploaded.status == 0, uploaded.terminal
    _assert_bar(uploaded.terminal, "streamed.bin")


def test_no_bar_with_json_or_quiet_even_at_a_terminal(
    client_env: dict[str, str], big_file: Path, tmp_path: Path
) -> None:
    as_json = in_terminal("upload", big_file, "--json", env=client_env)
    assert as_json.status == 0, as_json.terminal
    assert as_json.terminal == ""
    file_id = json.loads(as_json.stdout)["file_id"]

    quiet = in_terminal("download", file_id, "-o", tmp_path / "quiet.bin", "-q", env=client_env)
    assert quiet.status == 0, quiet.terminal
    assert quiet.terminal == ""
    assert (tmp_path / "quiet.bin").stat().st_size == SIZE


def test_no_bar_in_a_pipe(client_env: dict[str, str], big_file: Path, tmp_path: Path) -> None:
    uploaded = artstore("upload", big_file, env=client_env)
    assert uploaded.status == 0, uploaded.err
    assert uploaded.stderr == b""
    assert uploaded.out.count("\n") == 1
    downloaded = artstore("download", uploaded.out.split()[0], "-o", tmp_path / "piped.bin", env=client_env)
    assert downloaded.status == 0, downloaded.err
    assert downloaded.stderr == b""
    assert "%" not in downloaded.out


def test_a_refused_upload_leaves_the_terminal_with_one_error_line(
    client_env: dict[str, str], big_file: Path
) -> None:
    refused = in_terminal("upload", big_file, "--sha256", "0" * 64, env=client_env)
    assert refused.status == 1
    assert refused.stdout == b""
    errors = [line for line in refused.terminal.splitlines() if line.startswith("artstore: ")]
    assert len(errors) == 1, refused.terminal
    assert "CHECKSUM_MISMATCH" in errors[0]
    assert "Traceback" not in refused.terminal
