"""The upload's bytes on their way through: counted against the limit, hashed when needed, never held."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

from artstore_common.errors import PayloadTooLarge


class UploadBody:
    """An async iterable over the file's bytes that can be iterated once.

    `started` turns true as soon as the first chunk is asked for: from then on the bytes may have gone to
    an element, so a failed attempt can no longer move to another element.

    With `hashed` false the bytes are only counted: the caller has the client's own SHA-256, which the
    element checks against what it received, an end-to-end check that a second hash here would not add to.
    """

    def __init__(self, source: AsyncIterator[bytes], *, max_bytes: int, hashed: bool = True) -> None:
        self._source = source
        self._max = max_bytes
        self._hash = hashlib.sha256() if hashed else None
        self.size = 0
        self.started = False

    @property
    def sha256(self) -> str:
        if self._hash is None:
            raise RuntimeError("this upload body was not hashed")
        return self._hash.hexdigest()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.started:
            raise RuntimeError("an upload body can be sent only once")
        self.started = True
        async for chunk in self._source:
            if not chunk:
                continue
            self.size += len(chunk)
            if self.size > self._max:
                raise PayloadTooLarge(
                    f"the file is larger than the {self._max} bytes this ingester accepts; nothing was stored"
                )
            if self._hash is not None:
                self._hash.update(chunk)
            yield chunk

    async def drain(self) -> str:
        """Read the rest without sending it anywhere; the sha256 of everything read."""
        async for _ in self:
            pass
        return self.sha256
