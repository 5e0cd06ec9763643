"""The README's SDK example, run as written against a real cluster."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support.readme import README, code_blocks


def _sdk_example() -> str:
    text = README.read_text()
    section = text[
        text.index("## The command line and the Python SDK") : text.index("## The API at a glance")
    ]
    [block] = code_blocks(section, "python")
    return block


def test_the_readme_sdk_example_runs(client_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "scan.pdf").write_bytes(b"%PDF-1.7 invoice 2026\n" * 1000)
    result = subprocess.run(
        [sys.executable, "-c", _sdk_example()],
        cwd=tmp_path,
        env={**os.environ, **client_env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "copy.pdf").read_bytes() == (tmp_path / "scan.pdf").read_bytes()
    assert re.search(r"scan\.pdf 22000$", result.stdout, re.M), result.stdout  # found by the search
    assert result.stdout.rstrip().splitlines()[-1].startswith("MODE_NOT_ALLOWED ")
