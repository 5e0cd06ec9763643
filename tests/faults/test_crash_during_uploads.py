"""SIGKILL in the middle of hundreds of concurrent uploads (and some deletes); recovery must leave no trace.

DESIGN section 3: a `kill -9` at any instant must leave every acknowledged upload readable with its
sha256, no torn attr.json, no visible partial file, an empty `tmp/`, and an index equal to the attr.json
files. Each round kills the element at a random moment, restarts it on the same data and checks all of
that for every file the test ever sent, then the next round crashes the recovered element again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest

from tests.faults._invariants import (
    RoundCheck,
    Stored,
    async_client,
    fetch_all,
    index_problems,
    index_rows,
    index_schema,
    report,
    rescan,
)
from tests.support.files import shard
from tests.support.processes import StorageElement

pytestmark = pytest.mark.faults

ROUNDS = 3
UPLOADS_PER_ROUND = 200
DELETES_PER_ROUND = 20
MAX_SIZE = 2 << 20


@dataclass
class Upload:
    file_id: str
    seed: int
    size: int
    sha256: str
    streamed: bool
    filename: str
    user: dict[str, Any]
    status: int | None = None
    answer: dict[str, Any] | None = None
    error: str = ""

    def body(self) -> bytes:
        return random.Random(self.seed).randbytes(self.size)


@dataclass
class Deletion:
    file_id: str
    status: int | None = None
    error: str = ""


@dataclass
class Ledger:
    """What the test knows for sure: files that must be there exactly so, files that must be gone."""

    present: dict[str, Stored] = field(default_factory=dict)
    absent: set[str] = field(default_factory=set)
    sent: set[str] = field(default_factory=set)


def plan_uploads(rng: random.Random, round_no: int) -> list[Upload]:
    uploads = []
    for i in range(UPLOADS_PER_ROUND):
        # Mostly small bodies with a tail up to 2 MiB: many short transactions in flight, a few long ones.
        size = 0 if rng.random() < 0.05 else int(MAX_SIZE * rng.random() ** 3)
        seed = rng.getrandbits(62)
        body = random.Random(seed).randbytes(size)
        uploads.append(
            Upload(
                file_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                seed=seed,
                size=size,
                sha256=hashlib.sha256(body).hexdigest(),
                streamed=rng.random() < 0.4,
                filename=f"round-{round_no}-upload-{i}.bin",
                user={
                    "description": f"round {round_no}, upload {i}",
                    "tags": ["faults", f"round-{round_no}"],
                    "metadata": {"index": i, "seed": str(seed)},
                },
            )
        )
    return uploads


async def _chunks(body: bytes, rng: random.Random) -> AsyncIterator[bytes]:
    position = 0
    while position < len(body):
        step = rng.randint(1, 256 * 1024)
        yield body[position : position + step]
        position += step
        await asyncio.sleep(0)


async def send_upload(client: httpx.AsyncClient, upload: Upload) -> None:
    body = upload.body()
    headers = {
        "X-Artstore-Filename": upload.filename,
        "Content-Type": "application/octet-stream",
        "X-Artstore-Attributes": json.dumps(upload.user),
        "X-Checksum-SHA256": upload.sha256,
    }
    # A streamed body goes out chunked, without Content-Length, so the element cannot reserve up front.
    content = _chunks(body, random.Random(upload.seed + 1)) if upload.streamed else body
    try:
        response = await client.put(f"/files/{upload.file_id}", content=content, headers=headers)
    except httpx.TransportError as exc:
        upload.error = type(exc).__name__
        return
    upload.status = response.status_code
    if response.status_code == 201:
        upload.answer = response.json()
    else:
        upload.error = response.text[:300]


async def send_deletion(client: httpx.AsyncClient, deletion: Deletion) -> None:
    try:
        response = await client.delete(f"/files/{deletion.file_id}")
    except httpx.TransportError as exc:
        deletion.error = type(exc).__name__
        return
    deletion.status = response.status_code
    if response.status_code != 200:
        deletion.error = response.text[:300]


async def progress(se: StorageElement, uploads: list[Upload], db: asyncpg.Connection) -> int:
    """How far the element got, seen from outside: uploads placed on disk (protocol step 4) plus uploads
    in the index (step 5, one WAL fsync before the commit). Runs from 0 to twice the uploads."""

    def placed() -> int:
        return sum(1 for u in uploads if (shard(se.data_dir, u.file_id) / f"{u.file_id}.attr.json").exists())

    indexed = await db.fetchval(
        f'SELECT count(*) FROM "{index_schema(se)}".file_index WHERE file_id = ANY($1::uuid[])',
        [u.file_id for u in uploads],
    )
    return await asyncio.to_thread(placed) + int(indexed)


async def storm(
    se: StorageElement, token: str, uploads: list[Upload], deletions: list[Deletion], kill_at: int
) -> None:
    """Send everything at once; SIGKILL the element once its progress reaches `kill_at`.

    The trigger watches the element's disk and index, not the answers: on two cores the test process lags
    far behind the element, and counting answers would kill it only after nearly everything finished.
    """
    requests_done = asyncio.Event()

    async def killer() -> None:
        db = await asyncpg.connect(se.database_url, timeout=10)
        try:
            while await progress(se, uploads, db) < kill_at:
                try:
                    await asyncio.wait_for(requests_done.wait(), timeout=0.005)
                except TimeoutError:
                    continue
                break  # everything finished first: the kill then hits an idle element, which must hold too
        finally:
            await db.close()
        await asyncio.to_thread(se.kill)

    async def traffic(client: httpx.AsyncClient) -> None:
        try:
            await asyncio.gather(
                *(send_upload(client, u) for u in uploads), *(send_deletion(client, d) for d in deletions)
            )
        finally:
            requests_done.set()

    async with async_client(se, token, connections=len(uploads) + len(deletions) + 8) as client:
        await asyncio.gather(killer(), traffic(client))


def _user_fields_problems(file_id: str, upload: Upload, attrs: dict[str, Any]) -> list[str]:
    expected = {
        "sha256": upload.sha256,
        "size_bytes": upload.size,
        "original_filename": upload.filename,
        "content_type": "application/octet-stream",
        **upload.user,
    }
    wrong = {k: attrs.get(k) for k, v in expected.items() if attrs.get(k) != v}
    return [f"{file_id}: attr.json differs from what was uploaded: {wrong}"] if wrong else []


def check_round(
    se: StorageElement,
    token: str,
    ledger: Ledger,
    uploads: list[Upload],
    deletions: list[Deletion],
) -> list[str]:
    disk = rescan(se.data_dir, se.element_id)
    index = asyncio.run(index_rows(se))
    touched = {u.file_id for u in uploads} | {d.file_id for d in deletions}
    fetched = asyncio.run(fetch_all(se, token, ledger.sent | touched))
    check = RoundCheck(disk, fetched)
    check.problems += disk.problems + index_problems(index, disk)
    unknown = (disk.attributes.keys() | disk.data_sizes.keys()) - ledger.sent - touched
    check.problems += [f"{fid}: on disk, but the test never uploaded it" for fid in sorted(unknown)]

    for file_id, stored in list(ledger.present.items()):
        if file_id not in touched:
            check.must_exist(file_id, stored, "acknowledged in an earlier round")
    for file_id in ledger.absent - touched:
        check.must_be_gone(file_id, "gone in an earlier round")

    for upload in uploads:
        ledger.sent.add(upload.file_id)
        if upload.status is not None and upload.status != 201:
            check.problems.append(f"{upload.file_id}: upload answered {upload.status}: {upload.error}")
        if upload.answer is not None:
            stored = Stored(upload.size, upload.sha256, upload.answer)
            check.problems += _user_fields_problems(upload.file_id, upload, upload.answer)
            check.must_exist(upload.file_id, stored, "upload answered 201")
            ledger.present[upload.file_id] = stored
        elif check.all_or_nothing(upload.file_id, upload.size, upload.sha256, "upload without answer"):
            attrs = disk.attributes[upload.file_id]
            check.problems += _user_fields_problems(upload.file_id, upload, attrs)
            ledger.present[upload.file_id] = Stored(upload.size, upload.sha256, attrs)
        else:
            ledger.absent.add(upload.file_id)

    for deletion in deletions:
        stored = ledger.present.pop(deletion.file_id)
        if deletion.status == 200:
            check.must_be_gone(deletion.file_id, "delete answered 200")
            ledger.absent.add(deletion.file_id)
            continue
        if deletion.status is not None or deletion.error == "ConnectError":
            # Refused, or never reached the element: the file must be exactly as it was.
            if deletion.status is not None:
                check.problems.append(
                    f"{deletion.file_id}: delete answered {deletion.status}: {deletion.error}"
                )
            check.must_exist(deletion.file_id, stored, "delete refused or never sent")
            ledger.present[deletion.file_id] = stored
        elif check.all_or_nothing(deletion.file_id, stored.size, stored.sha256, "delete without answer"):
            check.must_exist(deletion.file_id, stored, "delete without answer, file still there")
            ledger.present[deletion.file_id] = stored
        else:
            ledger.absent.add(deletion.file_id)
    return check.problems


@pytest.mark.parametrize(
    "wal_segment_bytes", [4 << 20, 4096], ids=["4MiB-wal-segments", "4KiB-wal-segments-compacted-often"]
)
def test_sigkill_during_concurrent_uploads_loses_nothing_acknowledged(
    make_se, admin_token, fault_seed, wal_segment_bytes
):
    rng = random.Random(fault_seed)
    se = make_se("edit", wal_segment_bytes=wal_segment_bytes)
    ledger = Ledger()
    for round_no in range(1, ROUNDS + 1):
        uploads = plan_uploads(rng, round_no)
        targets = rng.sample(sorted(ledger.present), min(DELETES_PER_ROUND, len(ledger.present)))
        deletions = [Deletion(file_id) for file_id in targets]
        kill_at = rng.randint(len(uploads) // 5, len(uploads) * 19 // 10)

        asyncio.run(storm(se, admin_token, uploads, deletions, kill_at))
        se.start()

        summary = (
            f"seed {fault_seed}, round {round_no}: SIGKILL at progress {kill_at} of {2 * len(uploads)} "
            f"(placed + indexed); uploads: {sum(u.status == 201 for u in uploads)} acknowledged, "
            f"{sum(u.status is None for u in uploads)} without answer; deletes: "
            f"{sum(d.status == 200 for d in deletions)} acknowledged, "
            f"{sum(d.status is None for d in deletions)} without answer"
        )
        print(summary)
        problems = check_round(se, admin_token, ledger, uploads, deletions)
        if problems:
            pytest.fail(report(summary, problems), pytrace=False)

    # The recovered element still takes writes.
    with httpx.Client(
        base_url=se.url + "/api/v1", headers={"Authorization": f"Bearer {admin_token}"}
    ) as client:
        after = client.put(
            f"/files/{uuid.uuid4()}", content=b"after the crashes", headers={"X-Artstore-Filename": "x"}
        )
        assert after.status_code == 201, after.text
