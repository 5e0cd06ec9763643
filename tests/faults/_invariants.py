"""What must hold on a storage element after a crash, as checks that return problems instead of raising.

Collecting every problem of a round before failing makes one report show the whole damage a crash did,
which says far more about the bug than the first assertion that trips.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.support.processes import StorageElement

DESIGN_FIELDS = {
    "schema_version", "file_id", "original_filename", "content_type", "size_bytes", "sha256",
    "storage_element_id", "created_at", "updated_at", "created_by", "description", "tags", "metadata",
    "retention", "status", "saga_id",
}  # fmt: skip
_ENTRY = re.compile(r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(bin|attr\.json)$")


def async_client(se: StorageElement, token: str, connections: int = 32) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=se.url + "/api/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx.Timeout(60, connect=10),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


@dataclass(frozen=True)
class Download:
    status: int
    size: int = 0
    sha256: str = ""


async def download(client: httpx.AsyncClient, file_id: str) -> Download:
    """GET the content, hashing it as it streams, so a test never holds a large file."""
    async with client.stream("GET", f"/files/{file_id}") as response:
        if response.status_code != 200:
            await response.aread()
            return Download(response.status_code)
        digest, size = hashlib.sha256(), 0
        async for chunk in response.aiter_bytes():
            digest.update(chunk)
            size += len(chunk)
        return Download(200, size, digest.hexdigest())


async def fetch_all(se: StorageElement, token: str, file_ids: set[str]) -> dict[str, Download]:
    async with async_client(se, token, connections=16) as client:
        gate = asyncio.Semaphore(16)

        async def one(file_id: str) -> tuple[str, Download]:
            async with gate:
                return file_id, await download(client, file_id)

        return dict(await asyncio.gather(*(one(f) for f in sorted(file_ids))))


@dataclass
class DiskState:
    """A rescan of `files/` done the way a reader must see it: attr.json is the truth."""

    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_sizes: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def holds(self, file_id: str) -> bool:
        return file_id in self.attributes or file_id in self.data_sizes


def rescan(data_dir: Path, element_id: str) -> DiskState:
    state = DiskState()
    for path in sorted((data_dir / "files").rglob("*")):
        if path.is_dir():
            continue
        match = _ENTRY.match(path.name)
        if match is None or path.parent != data_dir / "files" / path.name[0:2] / path.name[2:4]:
            state.problems.append(f"stray entry {path.relative_to(data_dir)}")
            continue
        file_id, kind = match.groups()
        if kind == "bin":
            state.data_sizes[file_id] = path.stat().st_size
            continue
        try:
            document = json.loads(path.read_bytes())
        except ValueError as exc:
            state.problems.append(f"{file_id}: attr.json does not parse ({exc})")
            continue
        if not isinstance(document, dict) or set(document) != DESIGN_FIELDS:
            state.problems.append(f"{file_id}: attr.json fields differ from DESIGN: {sorted(document)}")
            continue
        if document["file_id"] != file_id or document["schema_version"] != 1:
            state.problems.append(f"{file_id}: attr.json names {document['file_id']!r}, schema_version "
                                  f"{document['schema_version']!r}")  # fmt: skip
        if document["storage_element_id"] != element_id or document["status"] != "active":
            state.problems.append(f"{file_id}: attr.json element/status wrong: {document}")
        state.attributes[file_id] = document
    for file_id in sorted(state.data_sizes.keys() - state.attributes.keys()):
        state.problems.append(f"{file_id}: .bin without attr.json")
    for file_id in sorted(state.attributes.keys() - state.data_sizes.keys()):
        state.problems.append(f"{file_id}: attr.json without .bin")
    for file_id in sorted(state.attributes.keys() & state.data_sizes.keys()):
        recorded, actual = state.attributes[file_id]["size_bytes"], state.data_sizes[file_id]
        if recorded != actual:
            state.problems.append(f"{file_id}: .bin has {actual} bytes, attr.json says {recorded}")
    leftovers = sorted(p.name for p in (data_dir / "tmp").iterdir())
    if leftovers:
        state.problems.append(f"tmp/ not empty after recovery: {leftovers[:10]} ({len(leftovers)} entries)")
    return state


def differing(got: dict[str, Any] | None, expected: dict[str, Any]) -> dict[str, Any]:
    """Field -> (got, expected) for each field that differs."""
    got = got or {}
    return {k: (got.get(k), expected.get(k)) for k in DESIGN_FIELDS if got.get(k) != expected.get(k)}


@dataclass(frozen=True)
class Stored:
    size: int
    sha256: str
    attributes: dict[str, Any]


class RoundCheck:
    """Verdicts on single files after a restart, from one rescan and one download of each file."""

    def __init__(self, disk: DiskState, fetched: dict[str, Download]) -> None:
        self.disk = disk
        self.fetched = fetched
        self.problems: list[str] = []

    def must_exist(self, file_id: str, stored: Stored, why: str) -> None:
        got = self.fetched[file_id]
        if got.status != 200:
            self.problems.append(f"{file_id} ({why}): GET answered {got.status}, the file is lost")
            return
        if (got.size, got.sha256) != (stored.size, stored.sha256):
            self.problems.append(
                f"{file_id} ({why}): GET gave {got.size} bytes sha256 {got.sha256[:12]}, "
                f"expected {stored.size} bytes sha256 {stored.sha256[:12]}"
            )
        on_disk = self.disk.attributes.get(file_id)
        if on_disk != stored.attributes:
            self.problems.append(
                f"{file_id} ({why}): attr.json differs in {differing(on_disk, stored.attributes)}"
            )

    def must_be_gone(self, file_id: str, why: str) -> None:
        got = self.fetched[file_id]
        if got.status != 404 or self.disk.holds(file_id):
            self.problems.append(
                f"{file_id} ({why}): GET answered {got.status}, on disk: {self.disk.holds(file_id)}; "
                "expected 404 and nothing on disk"
            )

    def all_or_nothing(self, file_id: str, size: int, sha256: str, why: str) -> bool:
        """True if the file is there complete, False if fully absent; a problem for anything between."""
        got = self.fetched[file_id]
        if got.status == 404 and not self.disk.holds(file_id):
            return False
        if got.status == 200 and (got.size, got.sha256) == (size, sha256) and file_id in self.disk.attributes:
            return True
        self.problems.append(
            f"{file_id} ({why}): neither complete nor absent: GET {got.status} with {got.size} bytes "
            f"(expected {size}), sha256 ok: {got.sha256 == sha256}, on disk: {self.disk.holds(file_id)}"
        )
        return False


def index_schema(se: StorageElement) -> str:
    return "se_" + se.element_id.replace("-", "_")


async def index_rows(se: StorageElement) -> dict[str, dict[str, Any]]:
    conn = await asyncpg.connect(se.database_url, timeout=10)
    try:
        rows = await conn.fetch(
            f'SELECT file_id::text AS id, attributes::text AS attributes FROM "{index_schema(se)}".file_index'
        )
    finally:
        await conn.close()
    return {row["id"]: json.loads(row["attributes"]) for row in rows}


def index_problems(index: dict[str, dict[str, Any]], disk: DiskState) -> list[str]:
    """The index must be exactly what a rebuild from the attr.json files would give."""
    problems = [
        f"{fid}: on disk, missing from the index" for fid in sorted(disk.attributes.keys() - index.keys())
    ]
    problems += [f"{fid}: in the index, not on disk" for fid in sorted(index.keys() - disk.attributes.keys())]
    for file_id in sorted(index.keys() & disk.attributes.keys()):
        if index[file_id] != disk.attributes[file_id]:
            problems.append(
                f"{file_id}: index row differs from attr.json in {differing(index[file_id], disk.attributes[file_id])}"
            )
    return problems


def report(title: str, problems: list[str], limit: int = 40) -> str:
    shown = "\n  ".join(problems[:limit])
    more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{title}: {len(problems)} problem(s)\n  {shown}{more}"
