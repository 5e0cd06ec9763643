from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

UPLOAD_BYTES = Counter("artstore_storage_upload_bytes_total", "File bytes stored", ["element"])
DOWNLOAD_BYTES = Counter("artstore_storage_download_bytes_total", "File bytes served", ["element"])
CAPACITY = Gauge("artstore_storage_capacity_bytes", "Capacity of the element", ["element", "kind"])
FILES = Gauge("artstore_storage_files", "Files stored on the element", ["element"])
WAL_RECOVERIES = Counter(
    "artstore_storage_wal_recoveries_total", "Recoveries run at start (WAL replays)", ["element"]
)
WAL_ROLLED_BACK = Counter(
    "artstore_storage_wal_rolled_back_total", "Unfinished transactions rolled back by recovery", ["element"]
)
OPERATIONS = Counter(
    "artstore_storage_operations_total", "File operations by outcome", ["element", "operation", "outcome"]
)
WRITE_STEP_SECONDS = Histogram(
    "artstore_storage_write_step_seconds",
    "Time an upload spent in each step of the write protocol, waiting for threads and fsyncs included: "
    "wal_begin (with the check that the id is free), receive, place (fsyncs and renames), index, wal_commit",
    ["element", "step"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0),
)
