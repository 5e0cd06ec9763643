"""The `artstore` command as a user runs it: a real process, its exit status, stdout and stderr."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ARTSTORE = str(Path(sys.executable).with_name("artstore"))
# One line, `artstore: CODE: detail (HTTP status)`, the shape of every refusal from a service.
API_ERROR = re.compile(r"artstore: (?P<code>[A-Za-z_]+): (?P<detail>.+) \(HTTP (?P<status>\d{3})\)")


@dataclass
class Run:
    status: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode()

    @property
    def err(self) -> str:
        return self.stderr.decode()

    def error_line(self) -> str:
        """The one line a failure prints on stderr (asserting that it is one line and nothing else)."""
        assert self.status == 1, (self.status, self.err)
        assert self.stdout == b"", self.out
        assert "Traceback" not in self.err, self.err
        lines = self.err.splitlines()
        assert len(lines) == 1, self.err
        assert self.err.endswith("\n")
        return lines[0]


def base_env() -> dict[str, str]:
    """The test's environment without any ARTSTORE_* variable of the machine, and the venv's bin on PATH."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ARTSTORE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def artstore(
    *args: str | Path,
    env: dict[str, str],
    input: bytes | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> Run:
    result = subprocess.run(
        [ARTSTORE, *map(str, args)],
        env={**base_env(), **env},
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        cwd=cwd,
        timeout=timeout,
    )
    return Run(result.returncode, result.stdout, result.stderr)
