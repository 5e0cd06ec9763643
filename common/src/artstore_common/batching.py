"""Coalescing calls: what callers ask for while one batch is on its way goes together in the next one.

No call waits for a timer: a lone call is sent at once, and under load a batch holds whatever arrived
during the previous one's round trip. This is how the ingester's uploads share the admin's saga
transactions (one request and one commit for many sagas instead of one each), and how concurrent requests
of one account share a call to the shared rate-limit bucket in Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# One outcome per item, in order: its result, or the exception its caller gets (an instance of its own).
SendBatch = Callable[[list[Item]], Awaitable[list[Result | Exception]]]


class Coalescer(Generic[Item, Result]):
    def __init__(self, send: SendBatch[Item, Result], *, max_items: int) -> None:
        self._send = send
        self._max_items = max_items
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_all(), name="coalesced-batches")
        return await future

    async def _send_all(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_items]
                del self._waiting[: self._max_items]
                # A caller that gave up (its request was cancelled) no longer needs its item sent.
                batch = [(item, future) for item, future in batch if not future.cancelled()]
                if batch:
                    await self._send_batch(batch)
        except asyncio.CancelledError:
            for _, future in self._waiting:
                future.cancel()
            self._waiting.clear()
            raise
        finally:
            self._sender = None

    async def _send_batch(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            outcomes = await self._send([item for item, _ in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(
                    f"a batch of {len(batch)} items was answered with {len(outcomes)} outcomes"
                )
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            # `send` answers each item itself, expected failures included; this is a bug, told to each caller
            # with an error of its own (one instance raised in many tasks grows one traceback).
            outcomes = [_failed_together(exc, len(batch)) for _ in batch]
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


def _failed_together(cause: Exception, items: int) -> RuntimeError:
    error = RuntimeError(f"a batch of {items} calls failed: {type(cause).__name__}: {cause}")
    error.__cause__ = cause
    return error
