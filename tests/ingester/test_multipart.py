"""The streaming multipart/form-data reader: exact parsing at every chunking, bounded memory, clear errors."""

import asyncio
import hashlib
from collections.abc import AsyncIterator

import pytest

from artstore_common.errors import BadRequest
from artstore_ingester.multipart import MultipartReader, boundary_from

Parsed = tuple[str, str | None, str | None, bytes]  # name, filename, content type, data

BOUNDARY = b"----ArtStoreBoundary7MA4YWxk"
DELIMITER = b"\r\n--" + BOUNDARY


def _form(*parts: tuple[bytes, bytes], preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    """A body from (header block, data) pairs; the first delimiter follows the preamble."""
    body = preamble + (b"\r\n" if preamble else b"")
    for headers, data in parts:
        body += b"--" + BOUNDARY + b"\r\n" + headers + b"\r\n\r\n" + data + b"\r\n"
    return body + b"--" + BOUNDARY + b"--" + epilogue


def _field(name: str, value: bytes) -> tuple[bytes, bytes]:
    return f'Content-Disposition: form-data; name="{name}"'.encode(), value


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _parse(body: bytes, chunk_size: int = 7, **options: int) -> list[Parsed]:
    reader = MultipartReader(_chunks(body, chunk_size), BOUNDARY, **options)
    parts: list[Parsed] = []
    async for part in reader:
        data = b"".join([chunk async for chunk in part.stream()])
        parts.append((part.name, part.filename, part.content_type, data))
    return parts


def parse(body: bytes, chunk_size: int = 7, **options: int) -> list[Parsed]:
    return asyncio.run(_parse(body, chunk_size, **options))


FILE_DATA = b"\x00\xff binary\r\n--not a boundary\r\n\r\n" + bytes(range(256))
SAMPLE = _form(
    _field("title", b"Sunflowers, 1888"),
    _field("empty", b""),
    (
        b'Content-Disposition: form-data; name="file"; filename="sunflowers.tif"\r\nContent-Type: image/tiff',
        FILE_DATA,
    ),
    preamble=b"This is the preamble; ignore it.",
    epilogue=b"\r\nThis is the epilogue; ignore it too.\r\n",
)
SAMPLE_PARTS = [
    ("title", None, None, b"Sunflowers, 1888"),
    ("empty", None, None, b""),
    ("file", "sunflowers.tif", "image/tiff", FILE_DATA),
]


def test_fields_and_file_are_parsed_exactly():
    assert parse(SAMPLE, chunk_size=65536) == SAMPLE_PARTS


def test_every_chunking_gives_the_same_parts():
    async def all_sizes() -> list[list[Parsed]]:
        return [await _parse(SAMPLE, size) for size in range(1, len(SAMPLE) + 1)]

    for size, parts in enumerate(asyncio.run(all_sizes()), start=1):
        assert parts == SAMPLE_PARTS, f"chunk size {size}"


def test_data_that_nearly_matches_the_boundary_is_kept_byte_for_byte():
    tricky = b"".join(
        [
            b"\r\n--" + BOUNDARY[:-1] + b"X",  # all but the last byte of the delimiter
            b"\r\n--" + BOUNDARY[:10] + b"\r\r\n-\r\n--\r",  # prefixes, then other data
            b"x--" + BOUNDARY + b" not after a CRLF, so data",
            b"\r\n--" + BOUNDARY[:-1],  # a prefix right before the real delimiter
        ]
    )
    body = _form(_field("a", tricky), _field("b", b"\r"))

    async def all_sizes() -> list[list[Parsed]]:
        return [await _parse(body, size) for size in range(1, len(body) + 1)]

    for size, parts in enumerate(asyncio.run(all_sizes()), start=1):
        assert parts == [("a", None, None, tricky), ("b", None, None, b"\r")], f"chunk size {size}"


def test_delimiter_may_open_the_body_and_carry_transport_padding():
    body = (
        b"--" + BOUNDARY + b" \t \r\n"
        b"CONTENT-DISPOSITION: Form-Data; NAME=x\r\ncontent-type: text/plain\r\n\r\none"
        b"\r\n--" + BOUNDARY + b"\t\r\n"
        b'Content-Disposition: form-data; name="y"\r\n\r\ntwo'
        b"\r\n--" + BOUNDARY + b"--"
    )
    assert parse(body) == [("x", None, "text/plain", b"one"), ("y", None, None, b"two")]


@pytest.mark.parametrize(
    "content_type",
    [
        f"multipart/form-data; boundary={BOUNDARY.decode()}",
        f'multipart/form-data; boundary="{BOUNDARY.decode()}"',
        f'Multipart/Form-Data;charset=utf-8;  BOUNDARY = "{BOUNDARY.decode()}" ',
    ],
)
def test_boundary_quoted_or_not(content_type):
    assert boundary_from(content_type) == BOUNDARY


def test_boundary_may_contain_spaces_when_quoted():
    assert (
        boundary_from('multipart/form-data; boundary="gc0p4Jq0M2Yt08j34c0p (x)"')
        == b"gc0p4Jq0M2Yt08j34c0p (x)"
    )


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        (None, "no Content-Type"),
        ("application/json", "not 'application/json'"),
        ("multipart/mixed; boundary=abc", "not 'multipart/mixed'"),
        ("multipart/form-data", "no boundary"),
        ("multipart/form-data; boundary=", "1 to 70"),
        ("multipart/form-data; boundary=" + "a" * 71, "1 to 70"),
        ('multipart/form-data; boundary="ends in space "', "1 to 70"),
        ("multipart/form-data; boundary=a{b}", "1 to 70"),
        ('multipart/form-data; boundary="abc', "not closed"),
    ],
)
def test_bad_content_type_is_refused(content_type, message):
    with pytest.raises(BadRequest, match=message):
        boundary_from(content_type)


def test_filename_star_utf8_wins_over_filename():
    body = _form(
        (
            b'Content-Disposition: form-data; name="file"; filename="rates.csv"; '
            b"filename*=UTF-8''%E2%82%AC%20rates%20%C3%A9t%C3%A9.csv",
            b"1,2",
        ),
        ('Content-Disposition: form-data; name="raw"; filename="Été \\"1\\".txt"'.encode(), b"3"),
        (b'Content-Disposition: form-data; name="path"; filename="C:\\dir\\a.txt"', b"4"),
    )
    assert [(name, filename) for name, filename, _, _ in parse(body)] == [
        ("file", "€ rates été.csv"),
        ("raw", 'Été "1".txt'),
        ("path", "C:\\dir\\a.txt"),
    ]


def test_part_headers_are_exposed_with_lower_case_names():
    async def scenario() -> dict[str, str]:
        body = _form((b'Content-Disposition: form-data; name="a"\r\nX-Checksum:  sha256:ab \r\n folded', b""))
        async for part in MultipartReader(_chunks(body, 5), BOUNDARY):
            return part.headers
        raise AssertionError("no part")

    assert asyncio.run(scenario()) == {
        "content-disposition": 'form-data; name="a"',
        "x-checksum": "sha256:ab folded",
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_form(_field("a", b"1"))[:-2], "ended before its closing boundary"),
        (_form(_field("a", b"1"))[:-20], "ended before its closing boundary"),
        (b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=a\r\n", "ended before its closing"),
        (b"--" + BOUNDARY + b"\r\n", "ended before its closing boundary"),
        (b"--" + BOUNDARY, "ended before its closing boundary"),
        (b"just some bytes, no boundary", "contains no boundary"),
        (b"", "contains no boundary"),
        (b"--" + BOUNDARY + b"--\r\n", "contains no parts"),
        (_form((b"Content-Type: text/plain", b"1")), "part 1 .* has no Content-Disposition"),
        (_form((b"", b"1")), "part 1 .* has no Content-Disposition"),
        (
            _form(_field("a", b"1"), (b"Content-Disposition: attachment; name=b", b"")),
            "part 2 .* 'attachment'",
        ),
        (_form((b"Content-Disposition: form-data; filename=x", b"")), "no field name"),
        (_form((b'Content-Disposition: form-data; name=""', b"")), "no field name"),
        (
            _form((b"Content-Disposition: form-data; name=a\r\nno colon here", b"")),
            "malformed .* header line",
        ),
        (_form((b"Content-Disposition: form-data; name=a\r\nBad Name: x", b"")), "malformed .* header line"),
        (_form((b"Content-Disposition: form-data; name=a\r\nX: 1\r\nx: 2", b"")), "repeats the header"),
        (_form((b"Content-Disposition: form-data; name=a; name=b", b"")), "appears twice"),
        (_form((b"Content-Disposition: form-data; name=a; filename*=latin2''x", b"")), "filename\\*"),
        (_form((b'Content-Disposition: form-data; name="a', b"")), "not closed"),
        (_form((b"Content-Disposition: form-data; name=a\r\nX-Pad: " + b"x" * 300, b"")), "longer than 256"),
        (_form((b"Content-Disposition: form-data; name=\xff", b"")), "not valid UTF-8"),
        (b"--" + BOUNDARY + b"junk\r\nContent-Disposition: form-data; name=a\r\n\r\n", "unexpected bytes"),
        (_form(*[_field(f"f{i}", b"") for i in range(5)]), "more than 4 parts"),
    ],
)
def test_malformed_bodies_are_refused_with_a_reason(body, message):
    for chunk_size in (1, 3, 1000):
        with pytest.raises(BadRequest, match=message):
            parse(body, chunk_size, max_header_bytes=256, max_parts=4)


def test_exactly_max_parts_is_accepted():
    assert len(parse(_form(*[_field(f"f{i}", b"") for i in range(4)]), max_parts=4)) == 4


def test_read_text_decodes_small_fields_and_refuses_big_or_binary_ones():
    async def read(value: bytes, limit: int) -> str:
        async for part in MultipartReader(_chunks(_form(_field("note", value)), 4), BOUNDARY):
            return await part.read_text(limit=limit)
        raise AssertionError("no part")

    assert asyncio.run(read("Über 10 €".encode(), 12)) == "Über 10 €"
    with pytest.raises(BadRequest, match="'note' is longer than 11 bytes"):
        asyncio.run(read("Über 10 €".encode(), 11))
    with pytest.raises(BadRequest, match="'note' is not valid UTF-8"):
        asyncio.run(read(b"\xc3(", 100))


def test_unread_and_half_read_parts_are_drained_when_moving_on():
    big = bytes(range(256)) * 4000
    body = _form(
        (b'Content-Disposition: form-data; name="skipped"; filename="a.bin"', big),
        (b'Content-Disposition: form-data; name="half"; filename="b.bin"', big),
        _field("after", b"still here"),
    )

    async def scenario() -> dict[str, bytes | str]:
        seen: dict[str, bytes | str] = {}
        async for part in MultipartReader(_chunks(body, 1000), BOUNDARY):
            if part.name == "half":
                stream = part.stream()
                seen["half"] = await anext(stream)
            elif part.name == "after":
                seen["after"] = await part.read_text()
        return seen

    seen = asyncio.run(scenario())
    assert seen["after"] == "still here"
    assert seen["half"] == big[: len(seen["half"])]


def test_a_part_cannot_be_read_twice_or_after_the_reader_moved_on():
    async def scenario() -> None:
        reader = MultipartReader(
            _chunks(_form(_field("a", b"1"), _field("b", b"2"), _field("c", b"3")), 3), BOUNDARY
        )
        first = await anext(reader)
        assert await first.read_text() == "1"
        with pytest.raises(RuntimeError, match="already been read"):
            first.stream()
        second = await anext(reader)
        with pytest.raises(RuntimeError, match="already been read"):
            await first.read_text()
        await anext(reader, None)
        with pytest.raises(RuntimeError, match="moved past the part 'b'"):
            await anext(second.stream())

    asyncio.run(scenario())


@pytest.mark.slow
def test_a_large_part_streams_with_bounded_buffering():
    size, chunk_size, max_header_bytes = 50 * 1024 * 1024, 64 * 1024, 1024
    # Data full of CRs, CRLFs and delimiter prefixes, so the scanner keeps holding back and releasing tails.
    pattern = (bytes(range(256)) + DELIMITER[:-1] + b"\r\n--\r" + DELIMITER[:7]) * 97
    sent = hashlib.sha256()

    async def body() -> AsyncIterator[bytes]:
        yield (
            b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
        )
        remaining = size
        while remaining:
            piece = (pattern * (chunk_size // len(pattern) + 1))[: min(chunk_size, remaining)]
            sent.update(piece)
            remaining -= len(piece)
            yield piece
        yield DELIMITER + b"\r\n"
        yield b'Content-Disposition: form-data; name="after"\r\n\r\nok' + DELIMITER + b"--\r\n"

    async def scenario() -> tuple[int, str, int, list[str]]:
        reader = MultipartReader(body(), BOUNDARY, max_header_bytes=max_header_bytes)
        received, largest = hashlib.sha256(), 0
        parts = [await anext(reader)]
        async for chunk in parts[0].stream():
            received.update(chunk)
            largest = max(largest, len(chunk))
        parts += [part async for part in reader]
        return reader.max_buffered, received.hexdigest(), largest, [part.name for part in parts]

    max_buffered, digest, largest, names = asyncio.run(scenario())
    assert digest == sent.hexdigest()
    assert names == ["file", "after"]
    assert max_buffered <= chunk_size + len(DELIMITER) + max_header_bytes
    assert largest <= chunk_size + len(DELIMITER)
