"""The progress bar of uploads and downloads: bytes, rate and ETA on stderr, only for a person watching."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class Transfer(Protocol):
    def advance(self, size: int) -> None: ...
    def set_total(self, total: int | None) -> None: ...


class _Silent:
    def advance(self, size: int) -> None:
        pass

    def set_total(self, total: int | None) -> None:
        pass


class _Bar:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def advance(self, size: int) -> None:
        self._progress.advance(self._task, size)

    def set_total(self, total: int | None) -> None:
        self._progress.update(self._task, total=total)


def _shortened(label: str, width: int = 32) -> str:
    # The numbers matter more than a long name: keep the bar on one line of an ordinary terminal.
    return label if len(label) <= width else label[: width - 1] + "…"


def wanted(*, quiet: bool, json_output: bool) -> bool:
    """A bar helps a person at a terminal; in a pipe, a log or beside JSON it would be noise."""
    return not quiet and not json_output and sys.stderr.isatty()


@contextmanager
def transfer_progress(label: str, *, total: int | None, enabled: bool) -> Iterator[Transfer]:
    if not enabled:
        yield _Silent()
        return
    # rich.progress is imported only when a bar is drawn: it is the slowest import of the CLI.
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    with progress:
        task = progress.add_task(_shortened(label), total=total)
        bar = _Bar(progress, task)
        yield bar
        [state] = progress.tasks
        if state.total is None:
            # A stream of unknown length is complete once it ends: show 100 % rather than a pulsing bar.
            # A new total makes rich forget the samples of its rate: the final one is the average.
            elapsed = state.elapsed
            progress.update(task, total=state.completed)
            state.finished_time = elapsed
            state.finished_speed = state.completed / elapsed if elapsed else None
