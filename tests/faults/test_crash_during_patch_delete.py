"""SIGKILL while attributes are patched and files deleted concurrently.

After recovery every file must be in one whole state: its attr.json is the one before the operation or the
one after it (the one after, if the operation was acknowledged), a delete answered 200 has removed the file
entirely, the bytes of every surviving file are untouched, `tmp/` is empty and the index equals a rescan.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pytest

from tests.faults._invariants import (
    RoundCheck,
    Stored,
    async_client,
    differing,
    fetch_all,
    index_problems,
    index_rows,
    report,
    rescan,
)
from tests.support.processes import StorageElement

pytestmark = pytest.mark.faults

FILES = 150
ROUNDS = 3
SPAN_SECONDS = 1.0  # operations start spread over this span, so some are always in flight at the kill


@dataclass
class Operation:
    kind: Literal["patch", "delete"]
    file_id: str
    start_after: float
    patch: dict[str, Any] | None = None
    status: int | None = None
    answer: dict[str, Any] | None = None
    error: str = ""

    @property
    def never_sent(self) -> bool:
        # No connection means the element never saw the request.
        return self.error == "ConnectError"

    @property
    def unanswered(self) -> bool:
        return self.status is None and not self.never_sent


@dataclass
class Ledger:
    present: dict[str, Stored] = field(default_factory=dict)
    absent: set[str] = field(default_factory=set)


async def store_files(se: StorageElement, token: str, rng: random.Random) -> dict[str, Stored]:
    bodies = {str(uuid.UUID(int=rng.getrandbits(128), version=4)): rng.randbytes(rng.randint(0, 256 * 1024))
              for _ in range(FILES)}  # fmt: skip
    async with async_client(se, token, connections=16) as client:
        gate = asyncio.Semaphore(16)

        async def one(file_id: str, body: bytes) -> tuple[str, Stored]:
            headers = {
                "X-Artstore-Filename": f"{file_id}.dat",
                "X-Artstore-Attributes": '{"description": "original", "tags": ["seeded"]}',
                "X-Checksum-SHA256": hashlib.sha256(body).hexdigest(),
            }
            async with gate:
                response = await client.put(f"/files/{file_id}", content=body, headers=headers)
            assert response.status_code == 201, response.text
            return file_id, Stored(len(body), hashlib.sha256(body).hexdigest(), response.json())

        return dict(await asyncio.gather(*(one(f, b) for f, b in bodies.items())))


def plan(rng: random.Random, round_no: int, present: dict[str, Stored]) -> list[Operation]:
    operations = []
    for file_id in sorted(present):
        start = rng.uniform(0, SPAN_SECONDS)
        token = rng.getrandbits(32).to_bytes(4, "big").hex()
        patch = {
            "description": f"patched in round {round_no} ({token})",
            "tags": [f"round-{round_no}", token],
            "metadata": {"round": round_no, "token": token},
        }
        draw = rng.random()
        if draw < 0.35:
            operations.append(Operation("patch", file_id, start, patch))
        elif draw < 0.50:
            operations.append(Operation("delete", file_id, start))
        elif draw < 0.56:
            # Both at once: the element serialises them per file (the loser answers 409).
            operations.append(Operation("patch", file_id, start, patch))
            operations.append(Operation("delete", file_id, start + rng.uniform(0, 0.005)))
    return operations


async def run(se: StorageElement, token: str, operations: list[Operation], kill_at: float) -> None:
    async with async_client(se, token, connections=len(operations) + 8) as client:

        async def one(op: Operation) -> None:
            await asyncio.sleep(op.start_after)
            try:
                if op.kind == "patch":
                    response = await client.patch(f"/files/{op.file_id}/attributes", json=op.patch)
                else:
                    response = await client.delete(f"/files/{op.file_id}")
            except httpx.TransportError as exc:
                op.error = type(exc).__name__
                return
            op.status = response.status_code
            if response.status_code != 200:
                op.error = response.text[:300]
            elif op.kind == "patch":
                op.answer = response.json()

        async def killer() -> None:
            await asyncio.sleep(kill_at)
            await asyncio.to_thread(se.kill)

        await asyncio.gather(killer(), *(one(op) for op in operations))


def _is_patched(attrs: dict[str, Any], before: dict[str, Any], patch: dict[str, Any]) -> bool:
    """The state after `patch`, whose updated_at the test cannot know when the answer was lost."""
    expected = {**before, **patch}
    return {k: v for k, v in attrs.items() if k != "updated_at"} == {
        k: v for k, v in expected.items() if k != "updated_at"
    }


def check_round(se: StorageElement, token: str, ledger: Ledger, operations: list[Operation]) -> list[str]:
    disk = rescan(se.data_dir, se.element_id)
    index = asyncio.run(index_rows(se))
    fetched = asyncio.run(fetch_all(se, token, set(ledger.present) | ledger.absent))
    check = RoundCheck(disk, fetched)
    check.problems += disk.problems + index_problems(index, disk)
    known = set(ledger.present) | ledger.absent
    unknown = (disk.attributes.keys() | disk.data_sizes.keys()) - known
    check.problems += [f"{fid}: on disk, but the test never uploaded it" for fid in sorted(unknown)]

    by_file: dict[str, dict[str, Operation]] = {}
    for op in operations:
        by_file.setdefault(op.file_id, {})[op.kind] = op
    for op in operations:
        # Of two operations on one file, the second is refused (409) or finds the file deleted (404).
        refused = len(by_file[op.file_id]) == 2 and op.status in (404, 409)
        if op.status not in (None, 200) and not refused:
            check.problems.append(f"{op.file_id}: {op.kind} answered {op.status}: {op.error}")

    for file_id in ledger.absent:
        check.must_be_gone(file_id, "deleted in an earlier round")
    for file_id, before in list(ledger.present.items()):
        ops = by_file.get(file_id, {})
        patch, delete = ops.get("patch"), ops.get("delete")
        patch_unknown = patch is not None and patch.unanswered
        delete_unknown = delete is not None and delete.unanswered
        if delete is not None and delete.status == 200:
            check.must_be_gone(file_id, "delete answered 200")
            del ledger.present[file_id]
            ledger.absent.add(file_id)
            continue
        expected = before
        if patch is not None and patch.answer is not None:
            expected = Stored(before.size, before.sha256, patch.answer)
        if not delete_unknown and not patch_unknown:
            # The outcome of every operation is known: exactly one state is right.
            check.must_exist(file_id, expected, "outcome of every operation known")
            ledger.present[file_id] = expected
            continue
        why = "an operation without answer"
        if not check.all_or_nothing(file_id, before.size, before.sha256, why):
            if not delete_unknown:
                check.problems.append(f"{file_id}: gone, but no delete of it can have run")
            del ledger.present[file_id]
            ledger.absent.add(file_id)
            continue
        attrs = disk.attributes[file_id]
        if attrs == expected.attributes:
            ledger.present[file_id] = expected
            continue
        if (
            patch is not None
            and patch.unanswered
            and _is_patched(attrs, before.attributes, patch.patch or {})
        ):
            ledger.present[file_id] = Stored(before.size, before.sha256, attrs)
            continue
        check.problems.append(
            f"{file_id} ({why}): attr.json is not a state the operations allow; "
            f"differs from {'the acknowledged patch' if expected is not before else 'before'} in "
            f"{differing(attrs, expected.attributes)}"
        )
    return check.problems


def _tally(operations: list[Operation]) -> str:
    parts = []
    for kind in ("patch", "delete"):
        ops = [op for op in operations if op.kind == kind]
        parts.append(
            f"{kind}: {sum(op.status == 200 for op in ops)} acknowledged, "
            f"{sum(op.unanswered for op in ops)} without answer, {sum(op.never_sent for op in ops)} never sent"
        )
    return "; ".join(parts)


@pytest.mark.parametrize(
    "wal_segment_bytes", [4 << 20, 4096], ids=["4MiB-wal-segments", "4KiB-wal-segments-compacted-often"]
)
def test_sigkill_during_concurrent_patch_and_delete_leaves_whole_states(
    make_se, admin_token, fault_seed, wal_segment_bytes
):
    rng = random.Random(fault_seed)
    se = make_se("edit", wal_segment_bytes=wal_segment_bytes)
    ledger = Ledger(present=asyncio.run(store_files(se, admin_token, rng)))
    for round_no in range(1, ROUNDS + 1):
        operations = plan(rng, round_no, ledger.present)
        kill_at = rng.uniform(0.15, 0.85) * SPAN_SECONDS
        asyncio.run(run(se, admin_token, operations, kill_at))
        se.start()

        summary = (
            f"seed {fault_seed}, round {round_no}: SIGKILL at {kill_at * 1000:.0f} ms of {len(operations)} "
            f"operations on {len(ledger.present)} files; {_tally(operations)}"
        )
        print(summary)
        problems = check_round(se, admin_token, ledger, operations)
        if problems:
            pytest.fail(report(summary, problems), pytrace=False)
