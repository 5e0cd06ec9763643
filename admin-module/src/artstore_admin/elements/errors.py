"""What can go wrong talking to a storage element, as problems the registry's callers can act on.

Registration answers 502 when the URL does not lead to a usable storage element: the request itself was
well-formed, the upstream answer was not (RFC 9110 s.15.6.3).
"""

from __future__ import annotations

from artstore_common.errors import ArtStoreError


class ElementUnreachable(ArtStoreError):
    status, code, title = 502, "SE_UNREACHABLE", "Storage element unreachable"


class ElementRefused(ArtStoreError):
    status, code, title = 502, "SE_REFUSED", "Storage element refused the admin"


class NotAStorageElement(ArtStoreError):
    status, code, title = 502, "NOT_A_STORAGE_ELEMENT", "Not a storage element"
