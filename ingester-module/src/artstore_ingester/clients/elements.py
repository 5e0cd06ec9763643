"""Calls from the ingester to storage elements, each behind that element's circuit breaker."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

import aiohttp
import httpx

from artstore_common.breakers import CircuitBreakers, TargetFailed
from artstore_common.errors import UpstreamProblem
from artstore_common.propagation import outgoing_headers
from artstore_common.service_token import ServiceToken
from artstore_ingester.clients.upstream import as_response

_WHO = "storage element"


class ElementFailed(TargetFailed):
    """The element could not be reached, timed out or failed (5xx). `before_body`: no byte of the upload
    had been handed over yet, so another element may take the file instead."""

    def __init__(self, element_id: str, detail: str, *, before_body: bool) -> None:
        super().__init__(detail)
        self.element_id = element_id
        self.detail = detail
        self.before_body = before_body

    @property
    def unreachable(self) -> bool:
        # Uploads go through aiohttp, whose connection errors are not httpx's.
        return isinstance(self.__cause__, aiohttp.ClientConnectionError) or super().unreachable


class ElementClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        uploads: aiohttp.ClientSession,
        token: ServiceToken,
        breakers: CircuitBreakers,
        *,
        connect_timeout: float,
        timeout: float,
    ) -> None:
        self._http = http
        self._token = token
        self.breakers = breakers
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._idle_seconds = timeout
        self._uploads = uploads

    async def put(
        self,
        element_id: str,
        url: str,
        file_id: uuid.UUID,
        headers: dict[str, str],
        body: AsyncIterable[bytes],
        body_started: Callable[[], bool],
    ) -> dict[str, Any]:
        """Stream one file to the element; its attr.json on 201, its problem (UpstreamProblem) on a 4xx/507.

        The element may take `timeout` seconds to accept each piece of the body and then to answer; time
        spent waiting for the client's next bytes does not count against it.
        """
        failure: list[Exception] = []
        with self.breakers.guard(element_id, ready_url=f"{url}/health/ready"):
            try:
                async with asyncio.timeout(None) as deadline:
                    # Not through ServiceToken.send: a streamed body cannot be sent twice.
                    async with self._uploads.put(
                        f"{url}/api/v1/files/{file_id}",
                        data=_timed_while_sent(body, deadline, self._idle_seconds, failure),
                        headers={
                            **outgoing_headers(),
                            **headers,
                            "Authorization": f"Bearer {await self._token()}",
                        },
                    ) as answer:
                        content = await answer.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                if failure:
                    raise failure[0] from None
                what = "stopped taking the body or answering" if isinstance(exc, TimeoutError) else "failed"
                raise ElementFailed(
                    element_id,
                    f"storage element '{element_id}' {what} during the upload ({type(exc).__name__}: {exc})",
                    before_body=not body_started(),
                ) from exc
            if failure:
                raise failure[0]
            return _answer(
                element_id,
                answer.status,
                content,
                lambda: as_response(answer, content),
                body_started,
                expect=201,
            )

    async def patch_attributes(
        self, element_id: str, url: str, file_id: uuid.UUID, changes: dict[str, Any]
    ) -> dict[str, Any]:
        return await self._call(element_id, "PATCH", url, f"/api/v1/files/{file_id}/attributes", changes)

    async def delete(self, element_id: str, url: str, file_id: uuid.UUID) -> dict[str, Any]:
        return await self._call(element_id, "DELETE", url, f"/api/v1/files/{file_id}", None)

    async def attributes(self, element_id: str, url: str, file_id: uuid.UUID) -> dict[str, Any]:
        return await self._call(element_id, "GET", url, f"/api/v1/files/{file_id}/attributes", None)

    async def _call(
        self, element_id: str, method: str, base_url: str, path: str, body: dict[str, Any] | None
    ) -> dict[str, Any]:
        async def call(auth: dict[str, str]) -> httpx.Response:
            return await self._http.request(
                method,
                base_url + path,
                json=body,
                headers={**outgoing_headers(), **auth},
                timeout=self._timeout,
            )

        with self.breakers.guard(element_id, ready_url=f"{base_url}/health/ready"):
            try:
                response = await self._token.send(call)
            except httpx.TransportError as exc:
                raise ElementFailed(
                    element_id,
                    f"storage element '{element_id}' did not answer ({type(exc).__name__}: {exc})",
                    before_body=True,
                ) from exc
            return _answer(
                element_id, response.status_code, response.content, lambda: response, lambda: True, expect=200
            )


async def _timed_while_sent(
    body: AsyncIterable[bytes], deadline: asyncio.Timeout, seconds: float, failure: list[Exception]
) -> AsyncIterator[bytes]:
    """The body's chunks, with `deadline` running while one is handed on and after the last: the element
    gets `seconds` to take each chunk and then to answer. Waiting for the client's next bytes is not its
    delay, so the deadline is off meanwhile.

    aiohttp sends the body from a task of its own and reports what the source raised (a file over the limit,
    a client that hung up) as a connection error: it is kept in `failure`, to be raised unchanged. A
    cancellation is aiohttp's own, when the element went away.
    """
    loop = asyncio.get_running_loop()
    try:
        async for chunk in body:
            deadline.reschedule(loop.time() + seconds)
            yield chunk
            deadline.reschedule(None)
    except Exception as exc:
        failure.append(exc)
        raise
    deadline.reschedule(loop.time() + seconds)


def _answer(
    element_id: str,
    status: int,
    content: bytes,
    whole: Callable[[], httpx.Response],
    body_started: Callable[[], bool],
    *,
    expect: int,
) -> dict[str, Any]:
    """The element's document when it answered `expect`, else the error its answer means. The answer is
    built whole (`whole`) only for an error: for the usual answer that cost about 20 µs of each upload."""
    if status == expect:
        document: dict[str, Any] = json.loads(content)
        return document
    response = whole()
    if response.status_code >= 500 and response.status_code != 507:
        raise ElementFailed(
            element_id,
            f"storage element '{element_id}' failed ({response.status_code}): {response.text[:300]}",
            before_body=not body_started(),
        )
    if response.status_code in (401, 403):
        # The user was allowed by the ingester; an element refusing the ingester's own token is upstream.
        raise UpstreamProblem(
            502,
            "SE_REFUSED",
            "Storage element refused the ingester",
            f"storage element '{element_id}' refused the ingester's token ({response.status_code}); "
            "check that it trusts this cluster's admin (ARTSTORE_SE_JWKS_URL)",
        )
    raise UpstreamProblem.from_response(response, _WHO)
