"""The README's quickstart as a new user follows it: `make run` with embedded servers, then the blocks as written.

Nothing of the machine's PostgreSQL or Redis is used: the environment carries no ARTSTORE_* URL, so `make run`
starts both embedded, as on a fresh machine. Only the data directory and the ports are moved (through the
variables the CLI reads), so that the run cannot meet a developer's own cluster.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.e2e._devup import alive, free_base_port, port_is_open, wait_until
from tests.support.cli import base_env
from tests.support.readme import README, code_blocks, marked_section

pytestmark = pytest.mark.e2e

REPO = README.parent
READY = "Press Ctrl-C to stop."  # the last line of the summary `dev up` prints once ready


def quickstart_script() -> str:
    blocks = code_blocks(marked_section("quickstart"), "bash")
    assert len(blocks) >= 2, "the quickstart should hold the CLI block and the SDK block"
    return "\n".join(blocks)


def test_the_quickstart_tells_to_run_make_run_first() -> None:
    text = README.read_text()
    before = text[text.index("## Quickstart") : text.index("<!-- quickstart:begin -->")]
    assert "\nmake run\n" in before


def _wait_for_ready(make: subprocess.Popen[bytes], timeout: float) -> str:
    """Read `make run`'s output until the dev cluster says it is up; everything read so far.

    Straight from the pipe's descriptor: a buffered readline may pull the ready line into its buffer
    along with an earlier one, after which the descriptor never turns readable again for it."""
    assert make.stdout is not None
    descriptor = make.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(descriptor, selectors.EVENT_READ)
        while READY.encode() not in seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise AssertionError(
                    f"`make run` not ready within {timeout:.0f} s:\n{seen.decode(errors='replace')}"
                )
            chunk = os.read(descriptor, 65536)
            if not chunk:
                raise AssertionError(
                    f"`make run` exited with {make.wait()}:\n{seen.decode(errors='replace')}"
                )
            seen += chunk
    return seen.decode(errors="replace")


def test_make_run_and_the_quickstart_work_as_written(tmp_path: Path) -> None:
    base_port = free_base_port()
    env = base_env()  # no ARTSTORE_DATABASE_URL / ARTSTORE_REDIS_URL: embedded servers
    env |= {"ARTSTORE_DATA_DIR": str(tmp_path / "data"), "ARTSTORE_BASE_PORT": str(base_port)}
    env.pop("VIRTUAL_ENV", None)
    make = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal's foreground job is
    )
    processes: list[psutil.Process] = []
    try:
        banner = _wait_for_ready(make, timeout=240)
        assert "embedded" in banner
        processes = [psutil.Process(make.pid), *psutil.Process(make.pid).children(recursive=True)]

        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", quickstart_script()],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "minutes.txt" in result.stdout  # the upload and the search name the file
        assert "the same bytes came back" in result.stdout
        assert "se-edit" in result.stdout  # se list
        assert "se-rw" in result.stdout
        assert re.search(r"found sdk-note\.txt 24 bytes", result.stdout), result.stdout
        assert result.stdout.rstrip().endswith("Written through the SDK")
        # Nothing was left in the repository: the examples ran in their scratch directory.
        assert not (REPO / "minutes.copy.txt").exists()
    finally:
        # Ctrl-C in the terminal: SIGINT to the foreground process group (gone if `make run` failed).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(make.pid, signal.SIGINT)
        try:
            status = make.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            raise
        finally:
            if make.stdout is not None:
                make.stdout.close()
    assert status in (0, 2, 130, -signal.SIGINT), status
    wait_until(lambda: not alive(processes), within=10, what="every process of the cluster gone")
    assert not [offset for offset in (0, 10, 11, 20, 30) if port_is_open(base_port + offset)]
