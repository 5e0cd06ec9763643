"""The ingester's view of an upload's bytes on their own: counted, limited, hashed only when it must be."""

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


def test_without_hashing_the_bytes_are_still_counted_and_no_digest_is_claimed():
    # The client's SHA-256 came with the upload and the element checks it; the ingester must not
    # answer for a digest it did not compute.
    body = UploadBody(_pieces(b"abc", b"defg"), max_bytes=100, hashed=False)

    sent = asyncio.run(_send(body))

    assert sent == b"abcdefg"
    assert body.size == 7
    with pytest.raises(RuntimeError, match="not hashed"):
        _ = body.sha256


@pytest.mark.parametrize("hashed", [True, False])
def test_a_body_over_the_limit_stops_at_the_piece_that_crosses_it(hashed: bool):
    body = UploadBody(_pieces(b"12345", b"67890", b"never read"), max_bytes=8, hashed=hashed)
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
