"""The admin's saga API (DESIGN section 4), called with the ingester's own service token."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx

from artstore_common.background import SHUTDOWN_GRACE_SECONDS, Detached
from artstore_common.batching import Coalescer
from artstore_common.errors import ArtStoreError, DependencyUnavailable, UpstreamProblem
from artstore_common.logging import current_request_id
from artstore_common.propagation import outgoing_headers
from artstore_common.service_token import ServiceToken
from artstore_ingester.clients.upstream import as_response
from artstore_ingester.metrics import SAGA_BATCH_SIZE

_log = logging.getLogger("artstore.ingester.admin")


Answer = tuple[int, Any]  # an item's HTTP status and its document (a saga, or a problem)
BatchItem = tuple[str, dict[str, Any]]  # ("start" or "complete", what the single call would send)


class AdminUnreachable(DependencyUnavailable):
    code = "ADMIN_UNAVAILABLE"


@dataclass(frozen=True)
class Saga:
    id: uuid.UUID
    type: str
    status: str
    file_id: uuid.UUID
    storage_element_id: str
    created: bool  # False: the idempotency key named an existing saga
    # A started saga idle this long (no heartbeat) is undone by the admin's recovery loop.
    abandoned_after: float | None = None

    @classmethod
    def parse(cls, document: dict[str, Any], created: bool) -> Saga:
        abandoned_after = document.get("abandoned_after_seconds")
        return cls(
            id=uuid.UUID(document["id"]),
            type=document["type"],
            status=document["status"],
            file_id=uuid.UUID(document["file_id"]),
            storage_element_id=document["storage_element_id"],
            created=created,
            abandoned_after=None if abandoned_after is None else float(abandoned_after),
        )


class AdminClient:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        admin_url: str,
        token: ServiceToken,
        *,
        timeout: float,
        complete_attempts: int,
        batch_size: int = 1,
    ) -> None:
        self._http = http
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._base = admin_url.rstrip("/") + "/api/v1/sagas"
        self._token = token
        self._complete_attempts = complete_attempts
        # Saga starts and completions of concurrent uploads share one request and one admin transaction.
        self._batched = batch_size > 1
        self._batches = Coalescer(self._send_batch, max_items=batch_size)
        self._reports = Detached()  # failure reports nobody waits for

    async def _post(
        self, path: str, body: dict[str, Any] | None = None, *, for_one_request: bool = True
    ) -> httpx.Response:
        """POST to the admin's saga API. A call made for one client request carries its X-Request-ID (and
        `traceparent`), so the admin's log lines and audit records name it; a batch serves many requests,
        and each of its items names its own."""
        content = b"" if body is None else json.dumps(body).encode()
        headers = outgoing_headers() if for_one_request else {}
        if body is not None:
            headers["Content-Type"] = "application/json"

        async def call(auth: dict[str, str]) -> httpx.Response:
            async with self._http.post(
                self._base + path, data=content, headers={**auth, **headers}, timeout=self._timeout
            ) as answer:
                return as_response(answer, await answer.read())

        try:
            response = await self._token.send(call)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AdminUnreachable(f"the admin did not answer ({type(exc).__name__}: {exc})") from exc
        if response.status_code >= 500:
            raise AdminUnreachable(f"the admin failed ({response.status_code}): {response.text[:200]}")
        return response

    async def start(
        self,
        kind: str,
        file_id: uuid.UUID,
        *,
        storage_element_id: str | None = None,
        idempotency_key: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> Saga:
        body: dict[str, Any] = {"type": kind, "file_id": str(file_id), "payload": payload or {}}
        if storage_element_id is not None:
            body["storage_element_id"] = storage_element_id
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        if self._batched:
            status, document = await self._batches.submit(("start", body))
        else:
            response = await self._post("", body)
            status, document = response.status_code, _json(response)
        if status not in (200, 201):
            raise UpstreamProblem.from_problem(status, document, "admin")
        return Saga.parse(document, created=status == 201)

    async def complete(self, saga_id: uuid.UUID, attributes: dict[str, Any] | None) -> dict[str, Any]:
        """Complete, retrying a short while when the admin is unreachable (the call is idempotent)."""
        body = {"attributes": attributes} if attributes is not None else {}
        delay = 0.2
        for _ in range(self._complete_attempts - 1):
            try:
                return await self._complete_once(saga_id, body)
            except AdminUnreachable:
                await asyncio.sleep(delay)
                delay *= 2
        return await self._complete_once(saga_id, body)

    async def _complete_once(self, saga_id: uuid.UUID, body: dict[str, Any]) -> dict[str, Any]:
        if self._batched:
            item = {"saga_id": str(saga_id), **body, "request_id": current_request_id()}
            status, document = await self._batches.submit(("complete", item))
        else:
            response = await self._post(f"/{saga_id}/complete", body)
            status, document = response.status_code, _json(response)
        if status != 200:
            raise UpstreamProblem.from_problem(status, document, "admin")
        result: dict[str, Any] = document
        return result

    async def _send_batch(self, items: list[BatchItem]) -> list[Answer | Exception]:
        """Each item's (status, document), as the single endpoint would have answered it."""
        body: dict[str, list[dict[str, Any]]] = {"start": [], "complete": []}
        for call, item in items:
            body[call].append(item)
        for call, sent in body.items():
            if sent:
                SAGA_BATCH_SIZE.labels(call).observe(len(sent))
        try:
            response = await self._post("/batch", body, for_one_request=False)
        except AdminUnreachable as exc:
            return [AdminUnreachable(exc.detail) for _ in items]
        if response.status_code != 200:
            return [UpstreamProblem.from_response(response, "admin") for _ in items]
        results = response.json()
        answers = {call: iter(results[call]) for call in body}
        return [_answer(next(answers[call])) for call, _ in items]

    async def report_failure(self, saga_id: uuid.UUID, failure: BaseException | str) -> None:
        """Tell the admin the saga failed, so it compensates now; best effort, as its recovery loop would
        do the same later. Shielded: a cancelled request must still tell the admin, and `close` waits for
        a report its request no longer waits for."""
        await asyncio.shield(self._report(saga_id, failure))

    def report_failure_later(self, saga_id: uuid.UUID, failure: BaseException | str) -> None:
        """`report_failure` without waiting for it, where nothing reached an element and the undo is a
        formality; `close` gives the reports still on their way a while to arrive."""
        self._report(saga_id, failure)

    def _report(self, saga_id: uuid.UUID, failure: BaseException | str) -> asyncio.Task[None]:
        return self._reports.start(self._fail(saga_id, describe_failure(failure)), f"saga-fail-{saga_id}")

    async def close(self) -> None:
        if not await self._reports.finish(SHUTDOWN_GRACE_SECONDS):
            _log.warning(
                "%d saga failure reports not delivered (recovery will compensate)", len(self._reports)
            )

    async def _fail(self, saga_id: uuid.UUID, error: str) -> None:
        try:
            response = await self._post(f"/{saga_id}/fail", {"error": error[:4000]})
        except AdminUnreachable as exc:
            _log.warning("saga %s: failure not reported (recovery will compensate): %s", saga_id, exc.detail)
            return
        if response.status_code != 200:
            _log.warning("saga %s: the admin refused the failure report: %s", saga_id, response.text[:200])

    async def heartbeat(self, saga_id: uuid.UUID) -> bool:
        """True while the saga still runs; False once the admin compensated it."""
        try:
            response = await self._post(f"/{saga_id}/heartbeat")
        except AdminUnreachable as exc:
            _log.warning("saga %s: heartbeat not delivered: %s", saga_id, exc.detail)
            return True
        return response.status_code != 409


def _answer(result: dict[str, Any]) -> Answer | Exception:
    status = int(result["status"])
    if status >= 500:
        return AdminUnreachable(f"the admin failed ({status}): {result.get('problem')}")
    return status, result.get("saga") or result.get("problem")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def describe_failure(failure: BaseException | str) -> str:
    """What the saga log says went wrong: the ingester's own words, or the exception's."""
    if isinstance(failure, str):
        return failure
    if isinstance(failure, ArtStoreError):
        return f"{failure.code}: {failure.detail}"
    if isinstance(failure, asyncio.CancelledError):
        return "the request was cancelled (client gone or ingester shutting down)"
    return f"{type(failure).__name__}: {failure}"
