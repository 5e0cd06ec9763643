"""Reads from storage elements (attr.json and content), each behind that element's circuit breaker.

Where an element lives comes from the discovery snapshot. A refused connection, a timeout or a 5xx counts
against the element's breaker and reaches the client as 503 with Retry-After; an open circuit answers the
same at once, without trying the element.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import httpx

from artstore_common.breakers import CircuitBreakers, TargetFailed
from artstore_common.discovery import DiscoveryClient
from artstore_common.errors import NotFound, ServiceUnavailable, UpstreamProblem
from artstore_common.propagation import outgoing_headers
from artstore_common.service_token import ServiceToken

_WHO = "storage element"
# What a download passes on to the element, and what of the element's answer reaches the client.
_REQUEST_HEADERS = ("range", "if-none-match", "if-range", "if-match", "if-modified-since")
RESPONSE_HEADERS = (
    "content-type",
    "content-length",
    "content-range",
    "accept-ranges",
    "etag",
    "last-modified",
    "content-disposition",
    "cache-control",
    "x-checksum-sha256",
)
_RETRY_AFTER_SECONDS = 5


class ElementUnavailable(TargetFailed, ServiceUnavailable):
    """The element could not be reached, timed out or failed (5xx)."""

    code = "STORAGE_ELEMENT_UNAVAILABLE"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, retry_after=_RETRY_AFTER_SECONDS)


class ElementClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        token: ServiceToken,
        breakers: CircuitBreakers,
        discovery: DiscoveryClient,
        *,
        connect_timeout: float,
        timeout: float,
    ) -> None:
        self._http = http
        self._token = token
        self.breakers = breakers
        self._discovery = discovery
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)

    def url_of(self, element_id: str) -> str:
        for element in self._discovery.storage_elements:
            if element.get("id") == element_id:
                return str(element["url"]).rstrip("/")
        raise ServiceUnavailable(
            f"storage element '{element_id}' holds this file but is not in the discovery snapshot; "
            "it may have been removed from the registry",
            code="STORAGE_ELEMENT_UNKNOWN",
        )

    async def attributes(self, element_id: str, file_id: uuid.UUID) -> dict[str, Any]:
        """The file's attr.json as the element has it now."""
        base = self.url_of(element_id)
        url = f"{base}/api/v1/files/{file_id}/attributes"

        async def call(auth: dict[str, str]) -> httpx.Response:
            return await self._http.get(url, headers={**outgoing_headers(), **auth}, timeout=self._timeout)

        with self.breakers.guard(element_id, ready_url=f"{base}/health/ready"):
            try:
                response = await self._token.send(call)
            except httpx.TransportError as exc:
                raise _unreachable(element_id, exc) from exc
            _raise_for_failure(element_id, response)
        if response.status_code == 200:
            document: dict[str, Any] = response.json()
            return document
        raise _problem(element_id, response, file_id)

    async def open_content(
        self, element_id: str, file_id: uuid.UUID, method: str, headers: Mapping[str, str]
    ) -> httpx.Response:
        """Send a GET or HEAD for the file's bytes; the answer's body is not read yet: the caller streams and
        closes it. 200, 206, 304 and 416 are answers to pass on; anything else raises."""
        base = self.url_of(element_id)
        url = f"{base}/api/v1/files/{file_id}"
        forwarded = {name: headers[name] for name in _REQUEST_HEADERS if name in headers}

        async def call(auth: dict[str, str]) -> httpx.Response:
            request = self._http.build_request(
                method, url, headers={**outgoing_headers(), **forwarded, **auth}, timeout=self._timeout
            )
            response = await self._http.send(request, stream=True)
            if response.status_code == 401:
                # Read (a short problem body) before closing: a second 401 is reported with its detail.
                await response.aread()
                await response.aclose()
            return response

        with self.breakers.guard(element_id, ready_url=f"{base}/health/ready"):
            try:
                response = await self._token.send(call)
            except httpx.TransportError as exc:
                raise _unreachable(element_id, exc) from exc
            if response.status_code >= 500 and response.status_code != 507:
                await response.aread()
                await response.aclose()
                _raise_for_failure(element_id, response)
        if response.status_code in (200, 206, 304, 416):
            return response
        await response.aread()
        await response.aclose()
        raise _problem(element_id, response, file_id)


def _unreachable(element_id: str, exc: httpx.TransportError) -> ElementUnavailable:
    return ElementUnavailable(
        f"storage element '{element_id}' did not answer ({type(exc).__name__}: {exc}); try again shortly"
    )


def _raise_for_failure(element_id: str, response: httpx.Response) -> None:
    if response.status_code >= 500 and response.status_code != 507:
        raise ElementUnavailable(
            f"storage element '{element_id}' failed ({response.status_code}): {response.text[:300]}"
        )


def _problem(element_id: str, response: httpx.Response, file_id: uuid.UUID) -> Exception:
    if response.status_code == 404:
        return NotFound(f"file {file_id} is not on storage element '{element_id}'")
    if response.status_code in (401, 403):
        # The user was allowed by the query module; an element refusing the module's own token is upstream.
        return UpstreamProblem(
            502,
            "SE_REFUSED",
            "Storage element refused the query module",
            f"storage element '{element_id}' refused the query module's token ({response.status_code}); "
            "check that it trusts this cluster's admin (ARTSTORE_SE_JWKS_URL)",
        )
    return UpstreamProblem.from_response(response, _WHO)
