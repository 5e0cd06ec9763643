"""How much work one run does: the full run for the record, the quick one for a smoke check."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class Profile:
    name: str
    large_bytes: int
    large_rounds: int
    chunk_bytes: int
    small_bytes: int
    small_count: int
    small_warmup: int
    small_rounds: int
    concurrency: int

    @property
    def large_label(self) -> str:
        if self.large_bytes % GiB == 0:
            return f"{self.large_bytes // GiB} GiB"
        return f"{self.large_bytes // MiB} MiB"


FULL = Profile(
    name="full",
    large_bytes=GiB,
    large_rounds=3,
    chunk_bytes=MiB,
    small_bytes=4096,
    small_count=2000,
    small_warmup=200,
    small_rounds=3,
    concurrency=16,
)
QUICK = Profile(
    name="quick",
    large_bytes=64 * MiB,
    large_rounds=1,
    chunk_bytes=MiB,
    small_bytes=4096,
    small_count=300,
    small_warmup=50,
    small_rounds=1,
    concurrency=16,
)
