"""Names the metadata cache shares between its writers (admin) and its readers (query modules).

DESIGN section 6: a write or delete publishes an invalidation on `artstore:cache:invalidate`; every
query instance drops its L1 entry and the publisher deletes the L2 key.
"""

from __future__ import annotations

import uuid

from artstore_common.discovery import DEFAULT_NAMESPACE
from artstore_common.redis import key


def invalidation_channel(namespace: str) -> str:
    # Pub/sub ignores the database index: only a prefix keeps test runs apart (as for discovery).
    if namespace == DEFAULT_NAMESPACE:
        return "artstore:cache:invalidate"
    return f"{namespace}:cache:invalidate"


def metadata_key(namespace: str, file_id: uuid.UUID | str) -> str:
    """The L2 (Redis) entry of one file's attributes."""
    return key(namespace, "cache", "file", str(file_id))
