"""One exception hierarchy for every service, mapped to RFC 9457 problem+json in one place."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from artstore_common.logging import current_request_id

PROBLEM_JSON = "application/problem+json"
_log = logging.getLogger("artstore.errors")


class ArtStoreError(Exception):
    """A failure a client can act on. Subclasses fix the HTTP status, code and title."""

    status: int = 500
    code: str = "INTERNAL_ERROR"
    title: str = "Internal server error"

    def __init__(
        self, detail: str, *, headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra or {}


class BadRequest(ArtStoreError):
    status, code, title = 400, "BAD_REQUEST", "Bad request"


class InvalidToken(ArtStoreError):
    status, code, title = 401, "INVALID_TOKEN", "Authentication required"

    def __init__(self, detail: str) -> None:
        challenge = f'Bearer error="invalid_token", error_description="{_quote(detail)}"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class MissingToken(ArtStoreError):
    status, code, title = 401, "MISSING_TOKEN", "Authentication required"

    def __init__(self, detail: str = "send a bearer token in the Authorization header") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class InsufficientScope(ArtStoreError):
    status, code, title = 403, "INSUFFICIENT_SCOPE", "Permission denied"

    def __init__(self, permission: str, detail: str | None = None) -> None:
        challenge = f'Bearer error="insufficient_scope", scope="{permission}"'
        super().__init__(
            detail or f"this operation needs the permission '{permission}'",
            headers={"WWW-Authenticate": challenge},
        )


class NotFound(ArtStoreError):
    status, code, title = 404, "NOT_FOUND", "Not found"


class Conflict(ArtStoreError):
    status, code, title = 409, "CONFLICT", "Conflict"


class AlreadyExists(Conflict):
    code, title = "ALREADY_EXISTS", "Already exists"


class ModeNotAllowed(Conflict):
    code, title = "MODE_NOT_ALLOWED", "Operation not allowed in this mode"


class InvalidTransition(Conflict):
    code, title = "INVALID_TRANSITION", "Mode transition not allowed"


class SagaCompensated(Conflict):
    """The saga was undone (its ingester looked gone), so nothing more may be written under it. Between
    services a 409; the ingester tells its client 503: nothing was stored and the upload may be sent again."""

    code, title = "SAGA_COMPENSATED", "Saga compensated"


class PayloadTooLarge(ArtStoreError):
    status, code, title = 413, "PAYLOAD_TOO_LARGE", "Payload too large"


class RangeNotSatisfiable(ArtStoreError):
    status, code, title = 416, "RANGE_NOT_SATISFIABLE", "Range not satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__(
            f"the requested range lies outside the {size} bytes of this file",
            headers={"Content-Range": f"bytes */{size}"},
        )


class RateLimited(ArtStoreError):
    status, code, title = 429, "RATE_LIMITED", "Too many requests"

    def __init__(self, detail: str, *, headers: dict[str, str]) -> None:
        super().__init__(detail, headers=headers)


class ValidationFailed(ArtStoreError):
    status, code, title = 422, "VALIDATION_ERROR", "Invalid input"


class ChecksumMismatch(ArtStoreError):
    status, code, title = 422, "CHECKSUM_MISMATCH", "Checksum mismatch"


class ServiceUnavailable(ArtStoreError):
    status, code, title = 503, "SERVICE_UNAVAILABLE", "Service unavailable"

    def __init__(self, detail: str, *, retry_after: int = 5, code: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})
        if code:
            self.code = code


class DependencyUnavailable(ServiceUnavailable):
    code = "DEPENDENCY_UNAVAILABLE"


class InsufficientStorage(ArtStoreError):
    status, code, title = 507, "INSUFFICIENT_STORAGE", "Insufficient storage"


class UpstreamProblem(ArtStoreError):
    """A problem another ArtStore service answered, passed on with its own status, code and detail."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail, headers=headers, extra=extra)
        self.status, self.code, self.title = status, code, title

    @classmethod
    def from_response(cls, response: Any, who: str) -> UpstreamProblem:
        """From an httpx response holding problem+json (or anything else: then a generic detail)."""
        try:
            problem = response.json()
        except ValueError:
            problem = None
        return cls.from_problem(int(response.status_code), problem, who, response.headers.get("retry-after"))

    @classmethod
    def from_problem(
        cls, status: int, problem: Any, who: str, retry_after: str | None = None
    ) -> UpstreamProblem:
        """From a problem+json document (or anything else: then a generic detail) answered with `status`."""
        if not isinstance(problem, dict):
            problem = {}
        return cls(
            status,
            str(problem.get("code") or f"HTTP_{status}"),
            str(problem.get("title") or f"Refused by the {who}"),
            str(problem.get("detail") or problem.get("error_description") or f"the {who} answered {status}"),
            headers={"Retry-After": retry_after} if retry_after else None,
            # Extension members (RFC 9457 s.3.2) such as `mode` travel on; this service sets its own request id.
            extra={k: v for k, v in problem.items() if k not in _PROBLEM_MEMBERS},
        )


_PROBLEM_MEMBERS = frozenset({"type", "title", "status", "detail", "code", "instance", "request_id"})


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body = _problem(status, code, title, detail, extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def problem_body(exc: ArtStoreError) -> dict[str, Any]:
    """The problem+json document of an error, for answers that carry several (batch results)."""
    return _problem(exc.status, exc.code, exc.title, exc.detail, exc.extra)


def _problem(status: int, code: str, title: str, detail: str, extra: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://artstore.dev/problems/{code.lower().replace('_', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": current_request_id(),
    }
    body.update(extra or {})
    return body


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is invalid"


def install_error_handlers(app: FastAPI) -> None:
    async def on_artstore_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ArtStoreError)
        if exc.status >= 500:
            _log.warning("request failed: %s %s", exc.code, exc.detail)
        return problem_response(
            exc.status, exc.code, exc.title, exc.detail, headers=exc.headers, extra=exc.extra
        )

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(422, "VALIDATION_ERROR", "Invalid input", _describe_validation(exc))

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, f"HTTP_{exc.status_code}")
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        headers = dict(exc.headers) if exc.headers else None
        return problem_response(exc.status_code, code, detail, detail, headers=headers)

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        _log.exception("unhandled error", exc_info=exc)
        return problem_response(
            500, "INTERNAL_ERROR", "Internal server error", "an unexpected error occurred; see the server log"
        )

    async def on_database_error(request: Request, exc: Exception) -> JSONResponse:
        if not database_unavailable(exc):
            return await on_unexpected(request, exc)
        _log.warning("request failed: the database is unavailable: %s", exc)
        return problem_response(
            503,
            DependencyUnavailable.code,
            DependencyUnavailable.title,
            "the database is unavailable; retry later",
            headers={"Retry-After": "5"},
        )

    app.add_exception_handler(DBAPIError, on_database_error)
    app.add_exception_handler(PoolTimeout, on_database_error)
    # asyncpg lets a refused connect through unwrapped; every other client here wraps its own.
    app.add_exception_handler(ConnectionRefusedError, on_database_error)
    app.add_exception_handler(ArtStoreError, on_artstore_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


# SQLSTATE class 08 (connection exception) and the server going away or not yet taking connections.
_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03"}


def database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or went away (an outage: 503), not a bug in a statement (500)."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout | ConnectionRefusedError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        state = str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")
        if state.startswith("08") or state in _UNAVAILABLE_STATES:
            return True
        return isinstance(exc.orig, OSError) or isinstance(getattr(exc.orig, "__cause__", None), OSError)
    return False
