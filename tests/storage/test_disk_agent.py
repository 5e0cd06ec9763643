"""The disk agent: the helper process that runs the element's WAL writes and upload placing."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import httpx
import psutil
import pytest

from artstore_common.errors import AlreadyExists
from artstore_storage.storage.agent import AgentGone, DiskAgent
from artstore_storage.storage.layout import Layout
from artstore_storage.storage.placing import refuse_existing
from tests.support.files import put


def test_calls_run_in_another_process_and_keep_results_order_and_errors(tmp_path: Path) -> None:
    taken = tmp_path / "taken.bin"
    taken.write_bytes(b"x")

    async def scenario() -> None:
        agent = DiskAgent(threads=4)
        agent.start()
        try:
            assert await agent.call(os.getpid) != os.getpid()
            # Many calls at once, and one argument far larger than a pipe's buffer: each gets its own answer.
            big = os.urandom(3 << 20)
            sizes = await asyncio.gather(
                *(agent.call(len, b"x" * n) for n in range(300)), agent.call(len, big)
            )
            assert sizes == [*range(300), len(big)]
            # An exception raised in the agent arrives as itself, message included.
            with pytest.raises(AlreadyExists, match="already exists"):
                await agent.call(refuse_existing, "f1", tmp_path / "free.bin", taken)
            assert await agent.call(refuse_existing, "f2", tmp_path / "free.bin") is None
            await agent.ready()
        finally:
            await agent.stop()

    asyncio.run(scenario())


def test_log_lane_calls_are_not_held_up_by_busy_shared_threads_and_keep_their_order(tmp_path: Path) -> None:
    log = tmp_path / "log"

    async def scenario() -> None:
        agent = DiskAgent(threads=2)
        agent.start()
        try:
            # Every shared thread busy, as when uploads being placed take them all.
            busy = [asyncio.ensure_future(agent.call(time.sleep, 60)) for _ in range(2)]
            await asyncio.sleep(0.2)
            appended = await asyncio.wait_for(
                asyncio.gather(*(agent.call_in_log_lane(_append_line, log, f"{n}") for n in range(50))), 30
            )
            assert all(not call.done() for call in busy)
            assert appended == [*range(1, 51)]
            assert log.read_text().split() == [str(n) for n in range(50)]
        finally:
            await agent.stop()

    asyncio.run(scenario())


def _append_line(path: Path, text: str) -> int:
    with path.open("a") as file:
        file.write(text + "\n")
    return len(path.read_text().split())


def test_a_dead_agent_fails_calls_in_flight_and_every_later_one_with_a_clear_503() -> None:
    async def scenario() -> None:
        agent = DiskAgent(threads=2)
        agent.start()
        try:
            pid = await agent.call(os.getpid)
            in_flight = asyncio.ensure_future(agent.call(time.sleep, 30))
            await asyncio.sleep(0.2)
            os.kill(pid, signal.SIGKILL)
            with pytest.raises(AgentGone) as gone:
                await asyncio.wait_for(in_flight, 10)
            assert gone.value.status == 503
            assert gone.value.code == "DISK_AGENT_GONE"
            assert "no more writes until it is restarted" in gone.value.detail
            with pytest.raises(AgentGone):
                await agent.call(os.getpid)
            with pytest.raises(AgentGone):
                await agent.ready()
        finally:
            await agent.stop()

    asyncio.run(scenario())


def test_a_call_made_before_the_element_noticed_the_agent_died_is_a_503_too() -> None:
    async def scenario() -> None:
        agent = DiskAgent(threads=1)
        agent.start()
        try:
            pid = await agent.call(os.getpid)
            os.kill(pid, signal.SIGKILL)
            # Blocking on purpose: the loop must not read the pipe's end of file before the next call.
            os.waitpid(pid, 0)  # noqa: ASYNC222
            with pytest.raises(AgentGone) as gone:
                await asyncio.wait_for(agent.call(os.getpid), 10)
            assert gone.value.status == 503
            assert "stopped taking calls" in gone.value.detail
        finally:
            await agent.stop()

    asyncio.run(scenario())


def test_one_data_directory_takes_one_element(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.create()
    held = layout.lock(wait_seconds=1)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="in use by another storage element"):
        layout.lock(wait_seconds=0.5)
    assert time.monotonic() - started >= 0.5  # it waited for the holder before giving up
    os.close(held)
    os.close(layout.lock(wait_seconds=1))


def _agent_of(pid: int) -> psutil.Process:
    children = psutil.Process(pid).children()
    assert len(children) == 1, children
    assert "artstore_storage.storage.agent" in " ".join(children[0].cmdline())
    return children[0]


def test_the_agent_dies_with_a_killed_element_and_a_restart_recovers(make_se, client_for) -> None:
    se = make_se("rw")
    client = client_for(se)
    assert put(client, b"before the crash", file_id=(kept := uuid.uuid4())).status_code == 201
    agent = _agent_of(se.pid)
    se.kill()
    agent.wait(10)  # raises psutil.TimeoutExpired if the agent outlived its element
    se.start()
    assert httpx.get(se.url + "/health/ready").json()["checks"]["disk-agent"]["ok"] is True
    assert client_for(se).get(f"/files/{kept}").content == b"before the crash"


def test_an_element_whose_agent_died_refuses_writes_and_says_so_until_restarted(make_se, client_for) -> None:
    se = make_se("rw")
    client = client_for(se)
    assert put(client, b"stored", file_id=(kept := uuid.uuid4())).status_code == 201
    _agent_of(se.pid).kill()

    def refused() -> httpx.Response:
        deadline = time.monotonic() + 10
        while True:
            response = put(client, b"after the agent died")
            if response.status_code != 201 or time.monotonic() > deadline:
                return response
            time.sleep(0.1)

    response = refused()
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "DISK_AGENT_GONE"
    ready = httpx.get(se.url + "/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["disk-agent"]["ok"] is False
    assert client.get(f"/files/{kept}").content == b"stored"  # reads go on from disk
    se.restart()
    client = client_for(se)
    assert put(client, b"after the restart").status_code == 201
    assert client.get(f"/files/{kept}").content == b"stored"
