"""Helpers to upload and inspect files on a storage element."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx


def put(
    client: httpx.Client,
    content: bytes | Iterator[bytes] = b"hello",
    *,
    file_id: uuid.UUID | None = None,
    filename: str = "hello.txt",
    attributes: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    file_id = file_id or uuid.uuid4()
    sent = {"X-Artstore-Filename": filename, "Content-Type": "text/plain", **(headers or {})}
    if attributes is not None:
        sent["X-Artstore-Attributes"] = json.dumps(attributes)
    return client.put(f"/files/{file_id}", content=content, headers=sent)


def generated(size: int, chunk: int = 1 << 20, seed: int = 7) -> Iterator[bytes]:
    """Deterministic bytes, produced as a stream so the test never holds the whole file."""
    block = hashlib.sha256(str(seed).encode()).digest() * (chunk // 32)
    remaining = size
    while remaining:
        piece = block[: min(chunk, remaining)]
        remaining -= len(piece)
        yield piece


def generated_sha256(size: int, chunk: int = 1 << 20, seed: int = 7) -> str:
    digest = hashlib.sha256()
    for piece in generated(size, chunk, seed):
        digest.update(piece)
    return digest.hexdigest()


def shard(data_dir: Path, file_id: str) -> Path:
    return data_dir / "files" / file_id[0:2] / file_id[2:4]


def attr_json(data_dir: Path, file_id: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((shard(data_dir, file_id) / f"{file_id}.attr.json").read_text())
    return loaded


def files_on_disk(data_dir: Path) -> list[Path]:
    return sorted(p for p in (data_dir / "files").rglob("*") if p.is_file())


def tmp_entries(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "tmp").iterdir())
