"""The bytes both sides write: generated once, so the SE and its baseline store exactly the same data."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

_DISTINCT_BLOCKS = 16


@dataclass(frozen=True)
class LargeStream:
    """`size` bytes as chunks of `chunk` bytes, cycling through a few random blocks.

    Random rather than repeated-pattern data, so nothing on the path (page cache, a compressing
    filesystem) gets an advantage the real workload would not have; a small pool of blocks keeps the
    generator itself free of cost.
    """

    size: int
    chunk: int
    blocks: tuple[bytes, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(os.urandom(self.chunk) for _ in range(_DISTINCT_BLOCKS)))

    def chunks(self) -> Iterator[bytes]:
        remaining, index = self.size, 0
        while remaining:
            block = self.blocks[index % len(self.blocks)]
            piece = block if remaining >= len(block) else block[:remaining]
            remaining -= len(piece)
            index += 1
            yield piece

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for piece in self.chunks():
            digest.update(piece)
        return digest.hexdigest()

    async def achunks(self) -> AsyncIterator[bytes]:
        for piece in self.chunks():
            yield piece


@dataclass(frozen=True)
class SmallFiles:
    contents: list[bytes]
    sha256: list[str]

    @classmethod
    def random(cls, count: int, size: int) -> SmallFiles:
        contents = [os.urandom(size) for _ in range(count)]
        return cls(contents, [hashlib.sha256(c).hexdigest() for c in contents])
