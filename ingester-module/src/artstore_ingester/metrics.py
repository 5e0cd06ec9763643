"""The ingester's own metrics (HTTP, circuit and saga metrics come from common and the admin)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

UPLOAD_BYTES = Counter(
    "artstore_ingester_upload_bytes_total", "Bytes forwarded to storage elements", ["storage_element"]
)
UPLOADS = Counter("artstore_ingester_uploads_total", "Uploads by outcome", ["outcome"])
ELEMENT_ATTEMPTS = Counter(
    "artstore_ingester_element_attempts_total",
    "Uploads tried on a storage element, by outcome",
    ["storage_element", "outcome"],
)
SAGA_BATCH_SIZE = Histogram(
    "artstore_ingester_saga_batch_items",
    "Saga starts or completions sent to the admin in one request",
    ["call"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 100),
)
