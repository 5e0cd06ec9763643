"""A streaming multipart/form-data reader (RFC 7578, RFC 2046 section 5.1) with bounded memory.

The body is scanned with `bytearray.find`, so a part of any size passes through while the reader holds at
most one input chunk plus the delimiter plus `max_header_bytes`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from enum import Enum, auto
from urllib.parse import unquote

from artstore_common.errors import BadRequest

# RFC 2046 bchars: 1 to 70 of them, the last one not a space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_EXT_CHARSETS = ("utf-8", "iso-8859-1")


class _State(Enum):
    PREAMBLE = auto()
    DELIMITER = auto()  # just after a delimiter: "--" (close) or padding + CRLF follows
    DATA = auto()
    DONE = auto()


def boundary_from(content_type: str | None) -> bytes:
    """The boundary of a multipart/form-data Content-Type header value."""
    if not content_type:
        raise BadRequest("send the upload as multipart/form-data; the request has no Content-Type header")
    media_type, _, rest = content_type.partition(";")
    media_type = media_type.strip()
    if media_type.lower() != "multipart/form-data":
        raise BadRequest(f"send the upload as multipart/form-data, not {media_type!r}")
    boundary = _parse_params(rest, "Content-Type").get("boundary")
    if boundary is None:
        raise BadRequest("the multipart/form-data Content-Type header has no boundary parameter")
    if not _BOUNDARY.fullmatch(boundary):
        raise BadRequest(
            "the multipart boundary must be 1 to 70 letters, digits, spaces or '()+_,-./:=? characters "
            f"and must not end in a space; got {boundary[:80]!r}"
        )
    return boundary.encode("ascii")


class Part:
    """One form field or file. Its bytes are read once, through `stream()` or `read_text()`."""

    def __init__(self, reader: MultipartReader, headers: dict[str, str], number: int) -> None:
        self._reader = reader
        self._streamed = False
        self.headers = headers
        self.content_type = headers.get("content-type")
        disposition = headers.get("content-disposition")
        if disposition is None:
            raise BadRequest(
                f"part {number} of the multipart body has no Content-Disposition header; "
                "each part needs 'Content-Disposition: form-data; name=\"...\"'"
            )
        kind, _, rest = disposition.partition(";")
        if kind.strip().lower() != "form-data":
            raise BadRequest(
                f"part {number} of the multipart body has Content-Disposition {kind.strip()!r}; "
                "a form upload needs 'form-data'"
            )
        params = _parse_params(rest, "Content-Disposition")
        name = params.get("name")
        if not name:
            raise BadRequest(
                f"part {number} of the multipart body has no field name in its Content-Disposition"
            )
        self.name: str = name
        self.filename: str | None = params.get("filename")
        if "filename*" in params:
            self.filename = _ext_value(params["filename*"])

    def __repr__(self) -> str:
        return f"Part(name={self.name!r}, filename={self.filename!r}, content_type={self.content_type!r})"

    def stream(self) -> AsyncIterator[bytes]:
        """The part's bytes as they arrive; none of them are kept by the reader."""
        if self._streamed:
            raise RuntimeError(f"the part {self.name!r} has already been read")
        self._streamed = True
        return _PartStream(self)

    async def read_text(self, limit: int = 65536) -> str:
        """A small field as text: at most `limit` bytes of UTF-8."""
        data = bytearray()
        async for chunk in self.stream():
            data += chunk
            if len(data) > limit:
                raise BadRequest(f"the form field {self.name!r} is longer than {limit} bytes")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(f"the form field {self.name!r} is not valid UTF-8 text") from None


class _PartStream:
    # A plain iterator rather than an async generator: one the caller abandons halfway needs no aclose().
    def __init__(self, part: Part) -> None:
        self._part = part

    def __aiter__(self) -> _PartStream:
        return self

    async def __anext__(self) -> bytes:
        data = await self._part._reader._read_part(self._part)
        if data is None:
            raise StopAsyncIteration
        return data


class MultipartReader:
    """Parts of a multipart/form-data body, in order: `async for part in reader`.

    A part the caller does not read is discarded when the next one is requested. `max_buffered` is the
    largest the internal buffer has been, never more than one input chunk + len(boundary) + 4 +
    max_header_bytes.
    """

    def __init__(
        self,
        body: AsyncIterable[bytes],
        boundary: bytes,
        *,
        max_header_bytes: int = 16384,
        max_parts: int = 64,
    ) -> None:
        if not 1 <= len(boundary) <= 70:
            raise ValueError("a multipart boundary is 1 to 70 bytes long")
        self._body = aiter(body)
        self._delimiter = b"\r\n--" + boundary
        # A virtual CRLF lets the first delimiter sit at the very start of the body, with no preamble.
        self._buf = bytearray(b"\r\n")
        self._eof = False
        self._state = _State.PREAMBLE
        self._current: Part | None = None
        self._parts = 0
        self._max_header_bytes = max_header_bytes
        self._max_parts = max_parts
        self.max_buffered = len(self._buf)

    def __aiter__(self) -> MultipartReader:
        return self

    async def __anext__(self) -> Part:
        while self._state is _State.DATA:
            await self._next_data()
        if self._state is _State.DONE:
            raise StopAsyncIteration
        if self._state is _State.PREAMBLE:
            await self._skip_preamble()
        if await self._is_close_delimiter():
            self._state = _State.DONE
            if self._parts == 0:
                raise BadRequest("the multipart body contains no parts; send at least one form field")
            raise StopAsyncIteration
        self._parts += 1
        if self._parts > self._max_parts:
            raise BadRequest(f"the multipart body has more than {self._max_parts} parts")
        part = Part(self, _parse_headers(await self._header_block()), self._parts)
        self._current = part
        self._state = _State.DATA
        return part

    async def _read_part(self, part: Part) -> bytes | None:
        if part is not self._current:
            raise RuntimeError(f"the reader has moved past the part {part.name!r}")
        if self._state is not _State.DATA:
            return None
        return await self._next_data()

    async def _fill(self) -> bool:
        if self._eof:
            return False
        try:
            chunk = await anext(self._body)
        except StopAsyncIteration:
            self._eof = True
            return False
        self._buf += chunk
        self.max_buffered = max(self.max_buffered, len(self._buf))
        return True

    async def _skip_preamble(self) -> None:
        buf, delimiter = self._buf, self._delimiter
        while (found := buf.find(delimiter)) < 0:
            # Keep only what could still be the start of the first delimiter.
            del buf[: max(len(buf) - len(delimiter) + 1, 0)]
            if not await self._fill():
                raise BadRequest(
                    "the multipart body contains no boundary; check that the boundary in the "
                    "Content-Type header matches the one in the body"
                )
        del buf[: found + len(delimiter)]
        self._state = _State.DELIMITER

    async def _is_close_delimiter(self) -> bool:
        buf = self._buf
        while True:
            if buf.startswith(b"--"):
                return True  # whatever follows is the epilogue, which RFC 2046 says to ignore
            end = buf.find(b"\r\n")
            line = buf if end < 0 else buf[:end]
            if end < 0 and line.endswith(b"\r"):
                line = line[:-1]
            if line.strip(b" \t") and not (end < 0 and line == b"-"):
                raise BadRequest(
                    f"unexpected bytes {bytes(line[:40])!r} after a multipart boundary; the boundary "
                    "must not occur inside a part, so choose one that does not appear in the data"
                )
            if end >= 0:
                del buf[: end + 2]
                return False
            if len(buf) > self._max_header_bytes:
                raise BadRequest("a multipart boundary line is followed by too much padding")
            if not await self._fill():
                raise self._truncated()

    async def _header_block(self) -> bytes:
        buf = self._buf
        while True:
            if buf.startswith(b"\r\n"):
                del buf[:2]
                return b""
            end = buf.find(b"\r\n\r\n")
            if end > self._max_header_bytes or (end < 0 and len(buf) > self._max_header_bytes):
                raise BadRequest(
                    f"the headers of part {self._parts} of the multipart body are longer than "
                    f"{self._max_header_bytes} bytes"
                )
            if end >= 0:
                block = bytes(buf[:end])
                del buf[: end + 4]
                return block
            if not await self._fill():
                raise self._truncated()

    async def _next_data(self) -> bytes | None:
        """The next piece of the current part, or None at its end."""
        buf, delimiter = self._buf, self._delimiter
        while True:
            found = buf.find(delimiter)
            if found >= 0:
                data = bytes(buf[:found])
                del buf[: found + len(delimiter)]
                self._state = _State.DELIMITER
                return data or None
            safe = self._safe_length()
            if safe:
                data = bytes(buf[:safe])
                del buf[:safe]
                return data
            if not await self._fill():
                raise self._truncated()

    def _safe_length(self) -> int:
        """How many leading bytes of the buffer cannot belong to a delimiter that is still arriving."""
        buf, delimiter = self._buf, self._delimiter
        start = max(len(buf) - len(delimiter) + 1, 0)
        while (cr := buf.find(b"\r", start)) >= 0:
            if delimiter.startswith(buf[cr:]):
                return cr
            start = cr + 1
        return len(buf)

    def _truncated(self) -> BadRequest:
        return BadRequest(
            "the multipart body ended before its closing boundary; the upload was cut off, send it again"
        )


def _parse_headers(block: bytes) -> dict[str, str]:
    if not block:
        return {}
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the headers of a multipart part are not valid UTF-8") from None
    headers: dict[str, str] = {}
    last: str | None = None
    for line in text.split("\r\n"):
        if line[:1] in (" ", "\t") and last is not None and line.strip():
            headers[last] += " " + line.strip(" \t")  # obsolete line folding (RFC 5322 section 3.2.2)
            continue
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name) or any(c in line for c in "\r\n\0"):
            raise BadRequest(f"malformed multipart part header line {line[:100]!r}; expected 'Name: value'")
        key = name.lower()
        if key in headers:
            raise BadRequest(f"a multipart part repeats the header {name!r}")
        headers[key] = value.strip(" \t")
        last = key
    return headers


def _parse_params(text: str, header: str) -> dict[str, str]:
    """`; name=value; name="quoted value"` into a dict with lower-cased names."""
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        if text[i] in " \t;":
            i += 1
            continue
        equals = text.find("=", i)
        name = text[i:equals].strip().lower() if equals >= 0 else ""
        if not _TOKEN.fullmatch(name):
            raise BadRequest(f"malformed {header} header: expected name=value at {text[i : i + 40]!r}")
        i = equals + 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            value, i = _quoted_string(text, i + 1, header)
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] != ";":
                raise BadRequest(f"malformed {header} header: unexpected {text[i : i + 40]!r}")
        else:
            end = text.find(";", i)
            end = n if end < 0 else end
            value, i = text[i:end].strip(" \t"), end
        if name in params:
            raise BadRequest(f"malformed {header} header: the parameter {name!r} appears twice")
        params[name] = value
    return params


def _quoted_string(text: str, i: int, header: str) -> tuple[str, int]:
    out: list[str] = []
    while i < len(text):
        char = text[i]
        if char == '"':
            return "".join(out), i + 1
        # Only \" and \\ are escapes: browsers send Windows paths with bare backslashes.
        if char == "\\" and text[i + 1 : i + 2] in ('"', "\\"):
            char, i = text[i + 1], i + 1
        out.append(char)
        i += 1
    raise BadRequest(f"malformed {header} header: a quoted value is not closed")


def _ext_value(value: str) -> str:
    """An RFC 5987 ext-value such as UTF-8''%E2%82%AC%20rates.csv."""
    charset, quote1, rest = value.partition("'")
    _language, quote2, encoded = rest.partition("'")
    charset = charset.lower()
    if not (quote1 and quote2) or charset not in _EXT_CHARSETS:
        raise BadRequest(
            f"malformed filename* parameter {value[:80]!r}; expected UTF-8''percent-encoded-name"
        )
    try:
        return unquote(encoded, encoding=charset, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest(f"the filename* parameter {value[:80]!r} is not valid {charset}") from None
