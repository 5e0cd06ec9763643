"""Raw-disk baselines: what plain Python achieves on the same disk with the same bytes, no service."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.payload import LargeStream, SmallFiles


@dataclass(frozen=True)
class StreamResult:
    seconds: float
    size: int
    sha256: str


def write_stream(path: Path, stream: LargeStream) -> StreamResult:
    """Write, hash and fsync: the minimum work the SE's write protocol must do for the bytes."""
    digest = hashlib.sha256()
    started = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        size = 0
        for chunk in stream.chunks():
            digest.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
            size += len(chunk)
        os.fsync(fd)
    finally:
        os.close(fd)
    return StreamResult(time.perf_counter() - started, size, digest.hexdigest())


def read_file(path: Path, chunk: int) -> tuple[float, int]:
    """A plain read of the whole file in `chunk`-sized reads; returns (seconds, bytes)."""
    started = time.perf_counter()
    size = 0
    with open(path, "rb", buffering=0) as handle:
        while block := handle.read(chunk):
            size += len(block)
    return time.perf_counter() - started, size


def _write_small(path: Path, content: bytes) -> None:
    hashlib.sha256(content).hexdigest()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_small_sequential(directory: Path, files: SmallFiles) -> float:
    """One file after the other, each written, hashed and fsynced; returns the seconds taken."""
    directory.mkdir(parents=True)
    started = time.perf_counter()
    for index, content in enumerate(files.contents):
        _write_small(directory / f"{index}.bin", content)
    return time.perf_counter() - started


def write_small_threaded(directory: Path, files: SmallFiles, threads: int) -> float:
    """The same loop in `threads` threads, as many writers in flight as the SE gets concurrent uploads."""
    directory.mkdir(parents=True)
    paths = [directory / f"{index}.bin" for index in range(len(files.contents))]
    with ThreadPoolExecutor(threads) as pool:
        started = time.perf_counter()
        list(pool.map(_write_small, paths, files.contents))
        return time.perf_counter() - started


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _append_durably(wal: int, record: bytes) -> None:
    os.write(wal, record)
    os.fsync(wal)


def _write_by_protocol(root: Path, wal: int, content: bytes) -> None:
    """DESIGN section 3's steps for one file, minus HTTP, PostgreSQL and Redis."""
    name = uuid.uuid4().hex
    _append_durably(wal, f'{{"tx":"{name}","type":"begin"}}\n'.encode())
    staged = root / "tmp" / f"{name}.data"
    digest = hashlib.sha256(content).hexdigest()
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    shard = root / "files" / name[0:2] / name[2:4]
    for directory in (shard.parent, shard):
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        _fsync_dir(directory.parent)
    os.replace(staged, shard / f"{name}.bin")
    attr = root / "tmp" / f"{name}.attr"
    with open(attr, "wb") as handle:
        handle.write(f'{{"sha256":"{digest}","size_bytes":{len(content)}}}'.encode())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(attr, shard / f"{name}.attr.json")
    _fsync_dir(shard)
    _append_durably(wal, f'{{"tx":"{name}","type":"commit"}}\n'.encode())


def write_small_protocol(directory: Path, files: SmallFiles, threads: int) -> float:
    """Each file through the write protocol's disk steps (WAL begin, data, rename, attr.json, directory
    fsync, WAL commit) in `threads` threads: what the contract costs on this disk before any software."""
    for sub in ("tmp", "files"):
        (directory / sub).mkdir(parents=True)
    wal = os.open(directory / "wal.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        with ThreadPoolExecutor(threads) as pool:
            started = time.perf_counter()
            list(pool.map(lambda content: _write_by_protocol(directory, wal, content), files.contents))
            return time.perf_counter() - started
    finally:
        os.close(wal)


def resident_bytes(path: Path) -> int | None:
    """How much of `path` sits in the page cache (util-linux `fincore`); None where that tool is missing."""
    tool = shutil.which("fincore")
    if tool is None:
        return None
    result = subprocess.run(
        [tool, "--bytes", "--noheadings", "--raw", "--output", "RES", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    text = result.stdout.strip()
    return int(text) if result.returncode == 0 and text.isdigit() else None


def evict(path: Path) -> None:
    """Drop `path`'s clean pages from the page cache, so the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
