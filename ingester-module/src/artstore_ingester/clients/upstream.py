"""The ingester's HTTP session to the admin and the elements: aiohttp, one connection pool for both.

httpx's pool checks every pooled connection on each request, which with h11 cost the ingester 1.3-1.9 ms
of CPU per call; aiohttp's C parser and per-host pool about a tenth. (The service token and the element
calls off the upload path still use the cluster's httpx client.)
"""

from __future__ import annotations

import aiohttp
import httpx


def upstream_session(*, connect_timeout: float) -> aiohttp.ClientSession:
    """No overall timeout by default: each call sets the one it needs. Idle connections are dropped after
    4 s, before the other side's uvicorn closes them at 5 s, so no call goes out on a connection that is
    being closed under it."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=512, keepalive_timeout=4.0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding"),
    )


def as_response(answer: aiohttp.ClientResponse, content: bytes) -> httpx.Response:
    """An answer read whole, in the shape the callers' problem parsing (UpstreamProblem) reads."""
    return httpx.Response(answer.status, headers=tuple(answer.raw_headers), content=content)
