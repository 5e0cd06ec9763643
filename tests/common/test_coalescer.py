"""The ingester's call coalescing on its own: who waits for which batch, and what each caller gets back."""

from __future__ import annotations

import asyncio

import pytest

from artstore_common.batching import Coalescer


class Recorder:
    """A `send` that answers each item with its double after a pause, and remembers the batches it saw."""

    def __init__(self, *, fail_on: int | None = None, broken: bool = False) -> None:
        self.batches: list[list[int]] = []
        self._fail_on = fail_on
        self._broken = broken

    async def __call__(self, items: list[int]) -> list[int | Exception]:
        self.batches.append(list(items))
        await asyncio.sleep(0.05)
        if self._broken:
            raise ValueError("the admin answered something unreadable")
        return [ValueError(f"item {i} refused") if i == self._fail_on else i * 2 for i in items]


def test_calls_made_while_a_batch_is_out_go_together_in_the_next():
    async def scenario() -> tuple[list[int], list[list[int]]]:
        send = Recorder()
        coalescer: Coalescer[int, int] = Coalescer(send, max_items=3)
        first = asyncio.create_task(coalescer.submit(0))
        await asyncio.sleep(0.01)  # the lone first call is already on its way
        rest = [asyncio.create_task(coalescer.submit(i)) for i in range(1, 6)]
        return await asyncio.gather(first, *rest), send.batches

    results, batches = asyncio.run(scenario())

    assert results == [0, 2, 4, 6, 8, 10]
    assert batches == [[0], [1, 2, 3], [4, 5]]


def test_each_caller_gets_its_own_outcome_and_a_failed_batch_fails_every_caller_separately():
    async def scenario(send: Recorder) -> list[int | BaseException]:
        coalescer: Coalescer[int, int] = Coalescer(send, max_items=10)
        return await asyncio.gather(*(coalescer.submit(i) for i in range(3)), return_exceptions=True)

    refused = asyncio.run(scenario(Recorder(fail_on=1)))
    assert refused[0] == 0
    assert refused[2] == 4
    assert isinstance(refused[1], ValueError)
    assert str(refused[1]) == "item 1 refused"

    broken = asyncio.run(scenario(Recorder(broken=True)))
    assert all(isinstance(error, RuntimeError) for error in broken)
    assert len({id(error) for error in broken}) == 3, "callers share one exception instance"
    assert all(
        isinstance(error.__cause__, ValueError) for error in broken if isinstance(error, BaseException)
    )


def test_a_caller_that_gave_up_is_not_sent():
    async def scenario() -> list[list[int]]:
        send = Recorder()
        coalescer: Coalescer[int, int] = Coalescer(send, max_items=10)
        first = asyncio.create_task(coalescer.submit(0))
        await asyncio.sleep(0.01)
        gone = asyncio.create_task(coalescer.submit(1))
        kept = asyncio.create_task(coalescer.submit(2))
        await asyncio.sleep(0.01)
        gone.cancel()
        assert await first == 0
        assert await kept == 4
        with pytest.raises(asyncio.CancelledError):
            await gone
        return send.batches

    assert asyncio.run(scenario()) == [[0], [2]]
