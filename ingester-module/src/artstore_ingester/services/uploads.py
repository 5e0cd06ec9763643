"""The upload saga, ingester side (DESIGN section 4): start, stream to an element, complete.

Failure anywhere before completion reports the saga failed, so the admin undoes what the element
stored; if the ingester dies instead, the admin's recovery loop does the same after its timeout. A
file is acknowledged (201) only after the catalog row exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from artstore_common.auth import Principal
from artstore_common.discovery import DiscoveryClient
from artstore_common.errors import (
    ArtStoreError,
    Conflict,
    DependencyUnavailable,
    SagaCompensated,
    ServiceUnavailable,
    UpstreamProblem,
    ValidationFailed,
)
from artstore_ingester.clients.admin import AdminClient, Saga, describe_failure
from artstore_ingester.clients.elements import ElementClient, ElementFailed
from artstore_ingester.metrics import ELEMENT_ATTEMPTS, UPLOAD_BYTES, UPLOADS
from artstore_ingester.services.body import UploadBody
from artstore_ingester.services.reservations import SagaReservations
from artstore_ingester.services.selection import (
    Element,
    NoStorageElement,
    element_by_id,
    select_storage_elements,
)
from artstore_ingester.services.upload_request import UploadRequest

_log = logging.getLogger("artstore.ingester.uploads")


class IdempotencyKeyMismatch(ValidationFailed):
    code, title = "IDEMPOTENCY_KEY_MISMATCH", "Idempotency key reused"


class IdempotencyKeyInUse(Conflict):
    code, title = "IDEMPOTENCY_KEY_IN_USE", "Request with this idempotency key in progress"


class UploadIntegrityError(ArtStoreError):
    status, code, title = 502, "SE_INTEGRITY", "Storage element stored other bytes"


class UploadService:
    def __init__(
        self,
        *,
        discovery: DiscoveryClient,
        admin: AdminClient,
        elements: ElementClient,
        reservations: SagaReservations,
        max_bytes: int,
        heartbeat_seconds: float,
    ) -> None:
        self._discovery = discovery
        self._admin = admin
        self._reservations = reservations
        self._elements = elements
        self._max_bytes = max_bytes
        self._heartbeat_seconds = heartbeat_seconds

    async def upload(
        self, request: UploadRequest, principal: Principal, idempotency_key: str | None
    ) -> tuple[dict[str, Any], bool]:
        """The stored file's attributes, and whether they are the replay of an earlier request."""
        if idempotency_key is not None:
            return await self._upload(request, principal, idempotency_key)
        # Only unkeyed uploads take sagas started ahead, so only they tell how many to keep.
        with self._reservations.upload_running():
            return await self._upload(request, principal, idempotency_key)

    async def _upload(
        self, request: UploadRequest, principal: Principal, idempotency_key: str | None
    ) -> tuple[dict[str, Any], bool]:
        candidates = select_storage_elements(
            self._discovery.storage_elements,
            retention=request.retention,
            size=request.declared_size,
            breakers=self._elements.breakers,
        )
        body = UploadBody(request.body, max_bytes=self._max_bytes, client_sha256=request.expected_sha256)
        file_id = uuid.uuid4()
        saga_key = _saga_key(principal.sub, idempotency_key)
        failures: list[str] = []
        for element in candidates:
            # The first choice only: a failover is rare, and taking would start refilling a second choice's pool.
            reserved = self._reservations.take(element.id) if saga_key is None and not failures else None
            saga = reserved or await self._start(file_id, element, saga_key, request, principal)
            if not saga.created:
                return await self._replay(saga, request, body), True
            try:
                attributes = await self._store(saga, element, request, body, principal)
            except ElementFailed as exc:
                ELEMENT_ATTEMPTS.labels(element.id, "failed").inc()
                if not exc.before_body:
                    await self._admin.report_failure(saga.id, _failure(exc, request, principal))
                    UPLOADS.labels("element_failed").inc()
                    raise DependencyUnavailable(
                        f"{exc.detail}; nothing was stored, send the file again", retry_after=5
                    ) from exc
                # Nothing reached the element, so the undo is a formality: do not make the client wait on it.
                self._admin.report_failure_later(saga.id, _failure(exc, request, principal))
                failures.append(exc.detail)
                continue
            except UpstreamProblem as exc:
                await self._admin.report_failure(saga.id, _failure(exc, request, principal))
                if exc.code == SagaCompensated.code:
                    UPLOADS.labels("compensated").inc()
                    raise ServiceUnavailable(
                        "the upload took longer than its saga was kept alive and was undone; nothing was "
                        "stored, send the file again",
                        code=SagaCompensated.code,
                        retry_after=1,
                    ) from exc
                if exc.status == 507 and not body.started:
                    ELEMENT_ATTEMPTS.labels(element.id, "full").inc()
                    failures.append(f"'{element.id}' is full")
                    continue
                UPLOADS.labels("refused").inc()
                raise
            except BaseException as exc:
                await self._admin.report_failure(saga.id, _failure(exc, request, principal))
                UPLOADS.labels("failed").inc()
                raise
            ELEMENT_ATTEMPTS.labels(element.id, "stored").inc()
            UPLOADS.labels("stored").inc()
            return attributes, False
        UPLOADS.labels("no_element").inc()
        raise NoStorageElement(
            "no storage element took the file: " + "; ".join(failures) + "; nothing was stored",
            retry_after=10,
        )

    async def _start(
        self,
        file_id: uuid.UUID,
        element: Element,
        saga_key: str | None,
        request: UploadRequest,
        principal: Principal,
    ) -> Saga:
        payload = {
            "filename": request.filename,
            "request_sha256": _digest(request.fingerprint),
            "requested_by": principal.sub,
        }
        try:
            return await self._admin.start(
                "upload", file_id, storage_element_id=element.id, idempotency_key=saga_key, payload=payload
            )
        except UpstreamProblem as exc:
            if exc.status == 409 and saga_key is not None:
                raise IdempotencyKeyMismatch(
                    "this Idempotency-Key was used for a different upload (other name, type or attributes); "
                    "use a new key for a new upload"
                ) from exc
            raise

    async def _store(
        self, saga: Saga, element: Element, request: UploadRequest, body: UploadBody, principal: Principal
    ) -> dict[str, Any]:
        headers = {
            "X-Artstore-Filename": quote(request.filename, safe=""),
            "Content-Type": request.content_type,
            "X-Artstore-Attributes": json.dumps(request.attributes.model_dump(mode="json")),
            "X-Saga-Id": str(saga.id),
            "X-Artstore-Created-By": quote(principal.sub, safe=""),
        }
        if request.declared_size is not None:
            headers["Content-Length"] = str(request.declared_size)
        if request.expected_sha256 is not None:
            headers["X-Checksum-SHA256"] = request.expected_sha256
        async with self._heartbeat(saga.id):
            attributes = await self._elements.put(
                element.id, element.url, saga.file_id, headers, body, lambda: body.started
            )
        UPLOAD_BYTES.labels(element.id).inc(body.size)
        await request.finish()
        if attributes.get("sha256") != body.sha256 or attributes.get("size_bytes") != body.size:
            raise UploadIntegrityError(
                f"storage element '{element.id}' reports {attributes.get('size_bytes')} bytes with sha256 "
                f"{attributes.get('sha256')}, the ingester sent {body.size} bytes with sha256 {body.sha256}; "
                "the upload was undone, send it again"
            )
        await self._admin.complete(saga.id, attributes)
        return attributes

    async def _replay(self, saga: Saga, request: UploadRequest, body: UploadBody) -> dict[str, Any]:
        if saga.status != "completed":
            raise IdempotencyKeyInUse(
                "an upload with this Idempotency-Key is still running; wait for its answer or retry shortly",
                headers={"Retry-After": "5"},
            )
        element = element_by_id(self._discovery.storage_elements, saga.storage_element_id)
        try:
            attributes = await self._elements.attributes(element.id, element.url, saga.file_id)
        except UpstreamProblem as exc:
            if exc.status == 404:
                raise Conflict(
                    f"the file stored under this Idempotency-Key ({saga.file_id}) has since been deleted; "
                    "use a new key to upload it again"
                ) from exc
            raise
        sha256 = request.expected_sha256 or await body.drain()
        if sha256 != attributes.get("sha256"):
            raise IdempotencyKeyMismatch(
                "this Idempotency-Key was used for an upload with other content; use a new key for a new upload"
            )
        return attributes

    @contextlib.asynccontextmanager
    async def _heartbeat(self, saga_id: uuid.UUID) -> AsyncIterator[None]:
        async def beat() -> None:
            while True:
                await asyncio.sleep(self._heartbeat_seconds)
                if not await self._admin.heartbeat(saga_id):
                    _log.warning("saga %s was compensated while its upload ran", saga_id)
                    return

        task = asyncio.create_task(beat(), name=f"saga-heartbeat-{saga_id}")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _failure(exc: BaseException, request: UploadRequest, principal: Principal) -> str:
    """The saga log's error: what went wrong, and whose upload it was (a saga started ahead records neither)."""
    return f"{describe_failure(exc)} (upload of '{request.filename}' by {principal.sub})"


def _digest(fingerprint: dict[str, Any]) -> str:
    """What tells a retry from another upload under the same key, in a saga payload of fixed size: the
    request itself may carry attributes up to their limits, beyond what a payload holds."""
    canonical = json.dumps(fingerprint, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _saga_key(sub: str, key: str | None) -> str | None:
    """Keys are the client's own: two accounts using the same key never meet."""
    if key is None:
        return None
    return "upload:" + hashlib.sha256(f"{sub}\n{key}".encode()).hexdigest()
