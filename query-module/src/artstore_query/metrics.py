"""The query module's own metrics (HTTP and circuit metrics come from common)."""

from __future__ import annotations

from prometheus_client import Counter

CACHE_READS = Counter(
    "artstore_query_cache_reads_total",
    "Metadata reads by the cache level that answered them (L1, L2, L3, L4) or 'miss' for unknown files",
    ["level"],
)
CACHE_INVALIDATIONS = Counter(
    "artstore_query_cache_invalidations_total", "Invalidation messages received from the cache channel"
)
L3_REVALIDATIONS = Counter(
    "artstore_query_l3_revalidations_total",
    "Catalog rows older than their TTL checked against the element's attr.json, by outcome",
    ["outcome"],
)
DOWNLOAD_BYTES = Counter(
    "artstore_query_download_bytes_total",
    "Bytes streamed to clients, by storage element",
    ["storage_element"],
)
