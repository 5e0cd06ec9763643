"""The admin's saga API (DESIGN section 4), called with the ingester's own service token."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from artstore_common.errors import ArtStoreError, DependencyUnavailable, UpstreamProblem
from artstore_common.service_token import ServiceToken

_log = logging.getLogger("artstore.ingester.admin")


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

    @classmethod
    def parse(cls, document: dict[str, Any], created: bool) -> Saga:
        return cls(
            id=uuid.UUID(document["id"]),
            type=document["type"],
            status=document["status"],
            file_id=uuid.UUID(document["file_id"]),
            storage_element_id=document["storage_element_id"],
            created=created,
        )


class AdminClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        admin_url: str,
        token: ServiceToken,
        *,
        timeout: float,
        complete_attempts: int,
    ) -> None:
        self._http = http
        self._base = admin_url.rstrip("/") + "/api/v1/sagas"
        self._token = token
        self._timeout = timeout
        self._complete_attempts = complete_attempts

    async def _post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        async def call(auth: dict[str, str]) -> httpx.Response:
            return await self._http.post(self._base + path, json=body, headers=auth, timeout=self._timeout)

        try:
            response = await self._token.send(call)
        except httpx.HTTPError as exc:
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
        response = await self._post("", body)
        if response.status_code not in (200, 201):
            raise UpstreamProblem.from_response(response, "admin")
        return Saga.parse(response.json(), created=response.status_code == 201)

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
        response = await self._post(f"/{saga_id}/complete", body)
        if response.status_code != 200:
            raise UpstreamProblem.from_response(response, "admin")
        result: dict[str, Any] = response.json()
        return result

    async def fail(self, saga_id: uuid.UUID, error: str) -> None:
        """Report a failure so the admin compensates now; best effort, as its recovery loop would too."""
        try:
            response = await self._post(f"/{saga_id}/fail", {"error": error[:4000]})
        except AdminUnreachable as exc:
            _log.warning("saga %s: failure not reported (recovery will compensate): %s", saga_id, exc.detail)
            return
        if response.status_code != 200:
            _log.warning("saga %s: the admin refused the failure report: %s", saga_id, response.text[:200])

    async def report_failure(self, saga_id: uuid.UUID, exc: BaseException) -> None:
        # Shielded: a cancelled request must still tell the admin, or its file waits for the recovery loop.
        await asyncio.shield(self.fail(saga_id, describe_failure(exc)))

    async def heartbeat(self, saga_id: uuid.UUID) -> bool:
        """True while the saga still runs; False once the admin compensated it."""
        try:
            response = await self._post(f"/{saga_id}/heartbeat")
        except AdminUnreachable as exc:
            _log.warning("saga %s: heartbeat not delivered: %s", saga_id, exc.detail)
            return True
        return response.status_code != 409


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, ArtStoreError):
        return f"{exc.code}: {exc.detail}"
    if isinstance(exc, asyncio.CancelledError):
        return "the request was cancelled (client gone or ingester shutting down)"
    return f"{type(exc).__name__}: {exc}"
