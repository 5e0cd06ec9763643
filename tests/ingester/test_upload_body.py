"""The ingester's view of an upload's bytes on their own: counted, limited, hashed unless the client's
digest came with them."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import pytest

from artstore_common.errors import PayloadTooLarge
from artstore_ingester.services.body import UploadBody


async def _pieces(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def _send(body: UploadBody) -> bytes:
    return b"".join([chunk async for chunk in body])


def test_the_bytes_pass_unchanged_counted_and_hashed():
    body = UploadBody(_pieces(b"abc", b"", b"defg"), max_bytes=100)

    sent = asyncio.run(_send(body))

    assert sent == b"abcdefg"
    assert body.size == 7
    assert body.sha256 == hashlib.sha256(b"abcdefg").hexdigest()


def test_with_the_clients_digest_the_bytes_are_counted_not_hashed():
    # The client's SHA-256 came with the upload and the element checks it: the body answers with that digest,
    # and does not hash the bytes (here they would not even match it).
    claimed = hashlib.sha256(b"other bytes").hexdigest()
    body = UploadBody(_pieces(b"abc", b"defg"), max_bytes=100, client_sha256=claimed)

    sent = asyncio.run(_send(body))

    assert sent == b"abcdefg"
    assert body.size == 7
    assert body.sha256 == claimed


@pytest.mark.parametrize("client_sha256", [None, "0" * 64])
def test_a_body_over_the_limit_stops_at_the_piece_that_crosses_it(client_sha256: str | None):
    body = UploadBody(_pieces(b"12345", b"67890", b"never read"), max_bytes=8, client_sha256=client_sha256)
    passed: list[bytes] = []

    async def send() -> None:
        async for chunk in body:
            passed.append(chunk)

    with pytest.raises(PayloadTooLarge, match="larger than the 8 bytes"):
        asyncio.run(send())
    assert passed == [b"12345"]


def test_a_body_can_be_sent_only_once():
    body = UploadBody(_pieces(b"x"), max_bytes=10)
    asyncio.run(_send(body))

    with pytest.raises(RuntimeError, match="only once"):
        asyncio.run(_send(body))
