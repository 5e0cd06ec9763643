"""What the SDK raises: every failure is an ArtStoreError whose message is one line a person can act on."""

from __future__ import annotations

import json
import math
import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

_MAX_DETAIL = 500


class ArtStoreError(Exception):
    """The base of everything the SDK raises on purpose."""


class ApiError(ArtStoreError):
    """A service answered with an error status (RFC 9457 problem+json, an OAuth error, or anything else)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        request_id: str | None = None,
        retry_after: int | None = None,
        url: str | None = None,
        body: Any = None,
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title
        self.request_id = request_id
        self.retry_after = retry_after
        self.url = url
        self.body = body
        super().__init__(f"{code}: {detail} (HTTP {status})")

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """Read the body of an error response (it must have been read already when streamed)."""
        status = response.status_code
        try:
            body: Any = json.loads(response.content) if response.content else None
        except ValueError:
            body = None
        request_id = response.headers.get("x-request-id")
        retry_after = _retry_after(response.headers.get("retry-after"))
        url = str(response.request.url) if response.request is not None else None
        if isinstance(body, dict) and isinstance(body.get("code"), str):  # RFC 9457 as ArtStore writes it
            return cls(
                status,
                body["code"],
                _one_line(body.get("detail") or body.get("title") or response.reason_phrase),
                title=body.get("title"),
                request_id=body.get("request_id") or request_id,
                retry_after=retry_after,
                url=url,
                body=body,
            )
        if isinstance(body, dict) and isinstance(body.get("error"), str):  # RFC 6749 s.5.2 (token endpoint)
            return cls(
                status,
                body["error"],
                _one_line(body.get("error_description") or response.reason_phrase),
                request_id=request_id,
                retry_after=retry_after,
                url=url,
                body=body,
            )
        if isinstance(body, dict) and body.get("detail"):  # a problem without a code
            detail = body["detail"] if isinstance(body["detail"], str) else json.dumps(body["detail"])
            return cls(
                status,
                f"HTTP_{status}",
                _one_line(detail),
                request_id=request_id,
                retry_after=retry_after,
                url=url,
                body=body,
            )
        text = response.text.strip() if response.content else ""
        return cls(
            status,
            f"HTTP_{status}",
            _one_line(text or response.reason_phrase or "no detail"),
            request_id=request_id,
            retry_after=retry_after,
            url=url,
            body=text or None,
        )


class ServiceUnreachable(ArtStoreError):
    """No answer from a service: refused, timed out, or the connection broke during a transfer."""

    def __init__(self, message: str, *, url: str, service: str) -> None:
        self.url = url
        self.service = service
        super().__init__(message)


class ChecksumMismatch(ArtStoreError):
    """The bytes received (or stored) do not have the SHA-256 they should have."""

    def __init__(self, message: str, *, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(message)


class CredentialsMissing(ArtStoreError):
    """Nothing says where the admin is or which account to use."""


class NotConfigured(ArtStoreError):
    """The client was not given the URL of a service it needs (e.g. no ingester_url)."""


def _one_line(text: Any) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _MAX_DETAIL else flat[: _MAX_DETAIL - 3] + "..."


def _retry_after(value: str | None) -> int | None:
    """RFC 9110 s.10.2.3: delay-seconds or an HTTP-date (whole seconds from now, at least 0); None when
    absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0, math.ceil(moment.timestamp() - time.time()))


def unreachable(exc: httpx.TransportError, *, service: str, url: str) -> ServiceUnreachable:
    """A transport failure as one line naming the service and its URL."""
    hint = "is the cluster running (`artstore dev up`) and the URL right?"
    if isinstance(exc, httpx.ConnectTimeout):
        message = f"cannot reach the {service} at {url}: no connection within the timeout; {hint}"
    elif isinstance(exc, httpx.ConnectError):
        reason = _one_line(exc) or type(exc).__name__
        message = f"cannot reach the {service} at {url}: {reason}; {hint}"
    elif isinstance(exc, httpx.TimeoutException):
        message = f"the {service} at {url} did not answer within the timeout ({type(exc).__name__})"
    else:
        reason = _one_line(exc) or type(exc).__name__
        message = f"the connection to the {service} at {url} failed: {reason}"
    return ServiceUnreachable(message, url=url, service=service)
