"""The fsync and rename primitives every durable write is built from (blocking: call them off the loop)."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# fsyncs issued side by side share one filesystem journal commit instead of queueing for one each.
_FAN_OUT = ThreadPoolExecutor(max_workers=16, thread_name_prefix="se-fsync")


def side_by_side(*calls: Callable[[], object]) -> None:
    """Run blocking calls concurrently (the last one in this thread) and re-raise the first failure."""
    futures = [_FAN_OUT.submit(call) for call in calls[:-1]]
    errors: list[BaseException] = []
    if calls:
        try:
            calls[-1]()
        except BaseException as exc:
            errors.append(exc)
    for future in futures:
        failure = future.exception()
        if failure is not None:
            errors.append(failure)
    if errors:
        raise errors[0]


def fsync_dir(path: Path) -> None:
    # A rename or unlink is only durable once the directory that holds the entry is fsynced.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def replace_durably(temp: Path, final: Path, data: bytes) -> None:
    """Write `data` to `temp`, fsync it, then rename over `final`: readers see old or new, never half."""
    write_file_durably(temp, data)
    os.replace(temp, final)
    fsync_dir(final.parent)


def make_dirs(path: Path) -> list[Path]:
    """Create `path` and missing parents without syncing; return the directories whose entries changed.

    The caller fsyncs them (in parallel) before the operation counts as durable.
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
