"""The fsync and rename primitives every durable write is built from (blocking: call them off the loop)."""

from __future__ import annotations

import os
from pathlib import Path

StrPath = str | os.PathLike[str]


def fsync_dir(path: StrPath) -> None:
    # A rename or unlink is only durable once the directory that holds the entry is fsynced.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_file_durably(path: StrPath, data: bytes, *, append: bool = False) -> None:
    """Write (or append) `data` and fsync the file; a missing file is created."""
    # os-level calls: open() would add an fstat, an ioctl and an lseek for buffering the file never needs.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC), 0o640)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(temp: Path, final: Path, data: bytes) -> None:
    """Write `data` to `temp`, fsync it, then rename over `final`: readers see old or new, never half."""
    write_file_durably(temp, data)
    os.replace(temp, final)
    fsync_dir(final.parent)


def make_dirs(path: Path) -> list[Path]:
    """Create `path` and missing parents without syncing; return the directories whose entries changed.

    The caller fsyncs them before the operation counts as durable.
    """
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
    return [directory.parent for directory in missing]


def ensure_dir(path: Path) -> None:
    """Create `path` and its parents, fsyncing each changed directory so the path survives a crash."""
    for directory in make_dirs(path):
        fsync_dir(directory)
