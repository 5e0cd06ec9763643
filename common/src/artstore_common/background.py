"""Work a service runs beside its requests: a loop that lasts while a lifespan is inside the block
(`running`), and detached work nobody waits for but shutdown gives a while to finish (`Detached`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

_log = logging.getLogger("artstore.background")

SHUTDOWN_GRACE_SECONDS = 10.0  # how long a stopping service waits for its detached work


@contextlib.asynccontextmanager
async def running(loop: Coroutine[Any, Any, None], name: str) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(loop, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Detached:
    """Fire-and-forget work (a failure report, a refill, an event) held until it is done: the event loop
    keeps only weak references to tasks, so one nobody holds can vanish halfway."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """The task, for a caller that wants to wait for it after all."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Nobody awaits it, so nobody else would say it failed.
            _log.error("background task '%s' failed", task.get_name(), exc_info=exc)

    async def finish(self, grace: float) -> bool:
        """Wait up to `grace` seconds for the work running, and for work it starts meanwhile.
        True when all of it finished; what remains after that keeps running."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                while self._tasks:
                    await asyncio.wait(set(self._tasks))
        return not self._tasks
