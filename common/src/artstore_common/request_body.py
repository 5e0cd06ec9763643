"""A request's body as it arrives, with a client that hangs up turned into a clear 400."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request

from artstore_common.errors import BadRequest


async def request_body(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        raise BadRequest("the client disconnected before the body was complete; nothing stored") from None
