"""Request bodies for the ingester's tests: multipart/form-data built as a stream, any size."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator


def multipart(
    fields: dict[str, str],
    *,
    filename: str | None,
    chunks: Iterable[bytes],
    content_type: str = "application/octet-stream",
    file_field: str = "file",
    trailing: Iterable[tuple[str, str]] = (),
) -> tuple[str, Iterator[bytes]]:
    """(Content-Type header, body chunks): the fields, then the file part, then `trailing` fields."""
    boundary = f"artstore-test-{uuid.uuid4().hex}"

    def field(name: str, value: str) -> bytes:
        return (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n').encode()

    def body() -> Iterator[bytes]:
        for name, value in fields.items():
            yield field(name, value)
        disposition = f'form-data; name="{file_field}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        yield f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {content_type}\r\n\r\n".encode()
        yield from chunks
        yield b"\r\n"
        for name, value in trailing:
            yield field(name, value)
        yield f"--{boundary}--\r\n".encode()

    return f"multipart/form-data; boundary={boundary}", body()
