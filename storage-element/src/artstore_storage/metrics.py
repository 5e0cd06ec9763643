from __future__ import annotations

from prometheus_client import Counter, Gauge

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
