"""Detached work on its own: what shutdown waits for, when it stops waiting, and what a failure leaves."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from artstore_common.background import Detached


def test_finish_waits_for_work_and_for_the_work_it_starts():
    done: list[str] = []

    async def scenario() -> bool:
        detached = Detached()

        async def report(name: str, delay: float) -> None:
            await asyncio.sleep(delay)
            done.append(name)

        async def refill() -> None:
            await asyncio.sleep(0.02)
            detached.start(report("started by refill", 0.05), "follow-up")  # like a release after a refill
            done.append("refill")

        detached.start(report("report", 0.01), "report")
        detached.start(refill(), "refill")
        return await detached.finish(grace=5)

    assert asyncio.run(scenario()) is True
    assert done == ["report", "refill", "started by refill"]


def test_finish_gives_up_after_its_timeout_and_says_so():
    async def scenario() -> tuple[bool, int, bool]:
        detached = Detached()
        forever = asyncio.Event()
        detached.start(forever.wait(), "stuck")
        finished = await detached.finish(grace=0.1)
        remaining = len(detached)
        forever.set()
        return finished, remaining, await detached.finish(grace=5)

    assert asyncio.run(scenario()) == (False, 1, True)


def test_a_failure_nobody_awaits_is_logged_with_its_task_name(caplog: pytest.LogCaptureFixture):
    async def broken() -> None:
        raise ValueError("the admin answered something unreadable")

    async def scenario() -> None:
        detached = Detached()
        detached.start(broken(), "saga-fail-42")
        await detached.finish(grace=5)

    with caplog.at_level(logging.ERROR, logger="artstore.background"):
        asyncio.run(scenario())

    [record] = [r for r in caplog.records if r.name == "artstore.background"]
    assert "saga-fail-42" in record.getMessage()
    assert record.exc_info is not None
    assert "unreadable" in str(record.exc_info[1])


def test_work_a_cancelled_caller_waited_for_is_still_finished_at_shutdown():
    """As a failure report of a request cancelled midway (the client went away): shielded, it goes on, and
    shutdown waits for it although nobody awaits it any more."""
    done: list[str] = []

    async def scenario() -> bool:
        detached = Detached()

        async def report() -> None:
            await asyncio.sleep(0.1)
            done.append("reported")

        async def request() -> None:
            await asyncio.shield(detached.start(report(), "saga-fail-7"))

        handler = asyncio.create_task(request())
        await asyncio.sleep(0.01)
        handler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await handler
        assert done == []  # the request is gone, its report still on its way
        return await detached.finish(grace=5)

    assert asyncio.run(scenario()) is True
    assert done == ["reported"]
