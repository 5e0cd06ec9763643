"""ArtStore client: the Python SDK and the `artstore` command line.

from artstore_client import Client

with Client.from_environment() as client:
    stored = client.upload("report.pdf", tags=["2026"])
    client.download(stored.file_id, "copy.pdf")
"""

from artstore_client._http import RetryWait, source_size
from artstore_client._models import Account, AuditVerification, FileInfo, SearchPage, StorageElement
from artstore_client.errors import (
    ApiError,
    ArtStoreError,
    ChecksumMismatch,
    CredentialsMissing,
    NotConfigured,
    ServiceUnreachable,
)
from artstore_client.sdk import Client

__version__ = "0.1.0"

__all__ = [
    "Account",
    "ApiError",
    "ArtStoreError",
    "AuditVerification",
    "ChecksumMismatch",
    "Client",
    "CredentialsMissing",
    "FileInfo",
    "NotConfigured",
    "RetryWait",
    "SearchPage",
    "ServiceUnreachable",
    "StorageElement",
    "__version__",
    "source_size",
]
