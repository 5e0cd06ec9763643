"""The upload's bytes on their way through: counted against the limit, hashed unless the client's own
SHA-256 came with them, never held."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

from artstore_common.errors import PayloadTooLarge


class UploadBody:
    """An async iterable over the file's bytes that can be iterated once.

    `started` turns true as soon as the first chunk is asked for: from then on the bytes may have gone to
    an element, so a failed attempt can no longer move to another element.

    `sha256` is what the bytes must hash to. With the client's own digest (`client_sha256`) the bytes are
    only counted: the element checks what it received against that digest, an end-to-end check that a
    second hash here would not add to. Without one, they are hashed on their way through.
    """

    def __init__(
        self, source: AsyncIterator[bytes], *, max_bytes: int, client_sha256: str | None = None
    ) -> None:
        self._source = source
        self._max = max_bytes
        self._client_sha256 = client_sha256
        self._hash = hashlib.sha256()
        self.size = 0
        self.started = False

    @property
    def sha256(self) -> str:
        return self._client_sha256 or self._hash.hexdigest()

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
            if self._client_sha256 is None:
                self._hash.update(chunk)
            yield chunk

    async def drain(self) -> str:
        """Read the rest without sending it anywhere; the sha256 of everything read."""
        async for _ in self:
            pass
        return self.sha256
