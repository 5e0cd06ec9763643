"""Stalled uploads keep old WAL segments needed while quick operations commit and the log compacts behind
them; a SIGKILL then must not undo any of the quick, acknowledged operations.

The element runs with the smallest WAL segment it accepts (4 KiB), so a few hundred records span many
segments and compaction happens within seconds, as it does after hours with the default 4 MiB segments.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.faults._invariants import (
    RoundCheck,
    Stored,
    async_client,
    fetch_all,
    index_problems,
    index_rows,
    report,
    rescan,
)
from tests.faults._polling import eventually
from tests.support.processes import StorageElement

pytestmark = pytest.mark.faults

STALLED = 3
ORIGINALS = 42  # patched or deleted, a third in each wave
QUICK_UPLOADS = 25  # per wave


def _in_wal(se: StorageElement, file_id: str) -> bool:
    return any(file_id.encode() in segment.read_bytes() for segment in (se.data_dir / "wal").iterdir())


@dataclass
class Outcome:
    uploaded: dict[str, Stored] = field(default_factory=dict)
    patched: dict[str, Stored] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    stalled: dict[str, str] = field(default_factory=dict)  # file id -> what the client got


async def _upload(client: httpx.AsyncClient, name: str) -> tuple[str, Stored | None, str]:
    file_id = str(uuid.uuid4())
    body = hashlib.sha256(name.encode()).digest() * 64
    headers = {"X-Artstore-Filename": name, "X-Checksum-SHA256": hashlib.sha256(body).hexdigest()}
    response = await client.put(f"/files/{file_id}", content=body, headers=headers)
    if response.status_code != 201:
        return file_id, None, f"PUT {name}: {response.status_code} {response.text[:200]}"
    return file_id, Stored(len(body), hashlib.sha256(body).hexdigest(), response.json()), ""


async def scenario(se: StorageElement, token: str) -> Outcome:
    outcome = Outcome()
    release = asyncio.Event()
    async with async_client(se, token, connections=16) as client:
        gate = asyncio.Semaphore(8)

        async def limited(name: str) -> tuple[str, Stored | None, str]:
            async with gate:
                return await _upload(client, name)

        originals: dict[str, Stored] = {}
        for file_id, stored, error in await asyncio.gather(
            *(limited(f"original-{i}") for i in range(ORIGINALS))
        ):
            assert stored is not None, error
            originals[file_id] = stored

        async def stalled_body() -> AsyncIterator[bytes]:
            yield b"the first bytes of an upload whose client then stalls"
            await release.wait()
            yield b"the rest, after the element is gone"

        async def stalled_upload(file_id: str) -> str:
            try:
                answer = await client.put(
                    f"/files/{file_id}", content=stalled_body(), headers={"X-Artstore-Filename": "stalled"}
                )
            except httpx.TransportError as exc:
                return type(exc).__name__
            return f"answered {answer.status_code} {answer.text[:200]}"

        async def patch(file_id: str) -> None:
            async with gate:
                body = {"description": "patched while an upload was stalled", "tags": ["patched"]}
                response = await client.patch(f"/files/{file_id}/attributes", json=body)
            if response.status_code != 200:
                outcome.refused.append(f"PATCH {file_id}: {response.status_code} {response.text[:200]}")
                return
            before = originals[file_id]
            outcome.patched[file_id] = Stored(before.size, before.sha256, response.json())

        async def delete(file_id: str) -> None:
            async with gate:
                response = await client.delete(f"/files/{file_id}")
            if response.status_code != 200:
                outcome.refused.append(f"DELETE {file_id}: {response.status_code} {response.text[:200]}")
                return
            outcome.deleted.add(file_id)

        async def quick_upload(i: int) -> None:
            file_id, stored, error = await limited(f"quick-{i}")
            if stored is None:
                outcome.refused.append(error)
            else:
                outcome.uploaded[file_id] = stored

        targets = sorted(originals)
        stalled: list[asyncio.Task[str]] = []
        # Each wave starts behind one more stalled upload, so each stall pins a different WAL segment.
        for wave in range(STALLED):
            file_id = str(uuid.uuid4())
            outcome.stalled[file_id] = ""
            stalled.append(asyncio.create_task(stalled_upload(file_id)))
            # The stalled upload has begun once its intent is in the WAL.
            await asyncio.to_thread(
                eventually,
                lambda fid=file_id: _in_wal(se, fid),
                within=30,
                what="the stalled upload begins",
            )
            share = slice(wave * ORIGINALS // STALLED, (wave + 1) * ORIGINALS // STALLED)
            wave_targets = targets[share]
            half = len(wave_targets) // 2
            await asyncio.gather(
                *(quick_upload(i) for i in range(wave * QUICK_UPLOADS, (wave + 1) * QUICK_UPLOADS)),
                *(patch(f) for f in wave_targets[:half]),
                *(delete(f) for f in wave_targets[half:]),
            )
        await asyncio.to_thread(se.kill)
        release.set()
        for file_id, task in zip(list(outcome.stalled), stalled, strict=True):
            outcome.stalled[file_id] = await task
    return outcome


def test_sigkill_after_wal_compaction_keeps_every_acknowledged_operation(make_se, admin_token):
    se = make_se("edit", wal_segment_bytes=4096)
    outcome = asyncio.run(scenario(se, admin_token))
    assert not outcome.refused, outcome.refused
    assert not any(got.startswith("answered") for got in outcome.stalled.values()), outcome.stalled
    segments = sorted(int(p.stem) for p in (se.data_dir / "wal").glob("*.wal"))
    assert segments, "the element left no WAL segment at all"
    assert segments[-1] >= 4, f"the WAL never rotated ({segments}); the scenario needs more records"

    se.start()

    disk = rescan(se.data_dir, se.element_id)
    everything = set(outcome.uploaded) | set(outcome.patched) | outcome.deleted | set(outcome.stalled)
    check = RoundCheck(disk, asyncio.run(fetch_all(se, admin_token, everything)))
    check.problems += disk.problems + index_problems(asyncio.run(index_rows(se)), disk)
    for file_id, stored in outcome.uploaded.items():
        check.must_exist(file_id, stored, "upload answered 201")
    for file_id, stored in outcome.patched.items():
        check.must_exist(file_id, stored, "patch answered 200")
    for file_id in outcome.deleted:
        check.must_be_gone(file_id, "delete answered 200")
    for file_id in outcome.stalled:
        check.must_be_gone(file_id, "stalled upload, never finished")
    summary = (
        f"after SIGKILL with {STALLED} stalled uploads open and WAL segments {segments[0]}..{segments[-1]} "
        f"({len(segments)} on disk), {len(outcome.uploaded)} uploads, {len(outcome.patched)} patches and "
        f"{len(outcome.deleted)} deletes acknowledged"
    )
    if check.problems:
        pytest.fail(report(summary, check.problems), pytrace=False)
