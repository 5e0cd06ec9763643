"""The ArtStore request headers (filename, attributes, checksums, saga id), each failure a clear 400."""

from __future__ import annotations

import base64
import re
from urllib.parse import unquote

from artstore_common.errors import BadRequest

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_SAGA_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_DIGEST_MEMBER = re.compile(r"^\s*([a-z0-9\-]+)\s*=\s*:([A-Za-z0-9+/=]*):\s*$")
_CONTENT_TYPE = re.compile(r"^[\w!#$&^.+\-]+/[\w!#$&^.+\-]+(\s*;.*)?$")


def text_header(name: str, raw: str | None, *, limit: int) -> str | None:
    """Header values arrive as latin-1; ArtStore headers carry UTF-8, optionally percent-encoded."""
    if raw is None:
        return None
    if len(raw) > limit:
        raise BadRequest(f"{name} is longer than {limit} bytes")
    try:
        decoded = raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise BadRequest(f"{name} is not valid UTF-8; percent-encode non-ASCII characters") from None
    try:
        return unquote(decoded, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest(f"{name} holds percent-encoded bytes that are not valid UTF-8") from None


def expected_sha256(checksum: str | None, content_digest: str | None) -> str | None:
    expected = None
    if checksum is not None:
        if not _HEX64.match(checksum.strip()):
            raise BadRequest("X-Checksum-SHA256 must be 64 hexadecimal digits")
        expected = checksum.strip().lower()
    if content_digest is not None:
        from_digest = _sha256_from_content_digest(content_digest)
        if expected is not None and from_digest is not None and from_digest != expected:
            raise BadRequest("X-Checksum-SHA256 and Content-Digest disagree")
        expected = expected or from_digest
    return expected


def _sha256_from_content_digest(header: str) -> str | None:
    """RFC 9530: a dictionary of algorithm=:base64:. Only sha-256 is used; others are ignored."""
    for member in header.split(","):
        match = _DIGEST_MEMBER.match(member)
        if match is None:
            raise BadRequest("Content-Digest is malformed; expected e.g. sha-256=:<base64>:")
        if match.group(1) == "sha-256":
            try:
                digest = base64.b64decode(match.group(2), validate=True)
            except ValueError:
                raise BadRequest("Content-Digest sha-256 is not valid base64") from None
            if len(digest) != 32:
                raise BadRequest("Content-Digest sha-256 must be 32 bytes")
            return digest.hex()
    return None


def saga_id(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not _SAGA_ID.match(raw):
        raise BadRequest("X-Saga-Id must be 1 to 128 characters of letters, digits and . _ : -")
    return raw


def content_type(raw: str | None) -> str:
    if raw is None or not raw.strip():
        return "application/octet-stream"
    value = raw.strip()
    if len(value) > 255 or not _CONTENT_TYPE.match(value) or not value.isascii():
        raise BadRequest("Content-Type is not a valid media type")
    return value


def content_length(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit():
        raise BadRequest("Content-Length must be a non-negative integer")
    return int(raw)
