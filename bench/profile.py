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


@dataclass(frozen=True)
class QueryProfile:
    """The query suite's work: files read through the cache levels, the catalog searched, one download."""

    name: str
    files: int  # read through each cache level, every round
    read_rounds: int
    catalog_rows: int  # bulk-loaded into the catalog before the searches
    searches: int  # per kind of search
    search_warmup: int
    download_bytes: int
    download_rounds: int
    chunk_bytes: int = MiB

    @property
    def download_label(self) -> str:
        if self.download_bytes % GiB == 0:
            return f"{self.download_bytes // GiB} GiB"
        return f"{self.download_bytes // MiB} MiB"


QUERY_FULL = QueryProfile(
    name="full",
    files=300,
    read_rounds=3,
    catalog_rows=1_000_000,
    searches=300,
    search_warmup=30,
    download_bytes=GiB,
    download_rounds=3,
)
QUERY_QUICK = QueryProfile(
    name="quick",
    files=200,
    read_rounds=1,
    catalog_rows=100_000,
    searches=100,
    search_warmup=10,
    download_bytes=128 * MiB,
    download_rounds=2,
)
