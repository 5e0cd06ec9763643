"""Routes: sagas (DESIGN section 4). Callers are the ingesters' system accounts (`internal`)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from artstore_admin.sagas.batches import Completion, SagaBatches
from artstore_admin.sagas.service import NewSaga, SagaService
from artstore_common.auth import Principal, authenticate, require_permission
from artstore_common.errors import InsufficientScope

router = APIRouter(prefix="/sagas", tags=["sagas"])
MAX_BATCH = 100


class SagaStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["upload", "update", "delete"]
    file_id: uuid.UUID
    # Required for an upload (the element chosen); an update or delete takes the file's from the catalog.
    storage_element_id: str | None = Field(default=None, min_length=1, max_length=128)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)
    # At most MAX_PAYLOAD_BYTES of JSON: the service refuses a bigger one, in a batch for that item alone.
    payload: dict[str, Any] = Field(default_factory=dict)


class SagaCompletion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The element's attr.json as its PUT or PATCH answered; required for uploads and updates.
    attributes: dict[str, Any] | None = None


class SagaCompletionItem(SagaCompletion):
    saga_id: uuid.UUID
    request_id: str | None = Field(default=None, max_length=128)


class SagaBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: list[SagaStart] = Field(default_factory=list, max_length=MAX_BATCH)
    complete: list[SagaCompletionItem] = Field(default_factory=list, max_length=MAX_BATCH)

    @model_validator(mode="after")
    def _not_empty(self) -> SagaBatch:
        if not self.start and not self.complete:
            raise ValueError("a batch starts or completes at least one saga")
        return self


class SagaFailure(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error: str = Field(min_length=1, max_length=4000)


async def _sagas(request: Request) -> SagaService:
    service: SagaService = request.app.state.sagas
    return service


async def _batches(request: Request) -> SagaBatches:
    service: SagaBatches = request.app.state.saga_batches
    return service


async def _reader(request: Request) -> Principal:
    """Services that run sagas read them; so do people who read the audit trail."""
    principal = await authenticate(request)
    if not (principal.has("internal") or principal.has("audit:read")):
        raise InsufficientScope("audit:read")
    return principal


Internal = Annotated[Principal, Depends(require_permission("internal"))]
Sagas = Annotated[SagaService, Depends(_sagas)]
Batches = Annotated[SagaBatches, Depends(_batches)]


@router.post("", status_code=201)
async def start_saga(
    body: SagaStart,
    response: Response,
    sagas: Sagas,
    principal: Internal,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> dict[str, Any]:
    new = NewSaga(
        type=body.type,
        file_id=body.file_id,
        storage_element_id=body.storage_element_id,
        idempotency_key=body.idempotency_key or idempotency_key,
        payload=body.payload,
    )
    saga, created = await sagas.start(new, principal.sub)
    if created:
        response.headers["Location"] = f"/api/v1/sagas/{saga['id']}"
    else:
        response.status_code = 200
    return saga


@router.post("/batch")
async def run_batch(body: SagaBatch, batches: Batches, principal: Internal) -> dict[str, Any]:
    """Several POST /sagas and POST /sagas/{id}/complete in one request: `start[i]` answers `start[i]`,
    `complete[i]` answers `complete[i]`, each with the status that call would have had and its `saga`, or
    its `problem`. A saga written here is summarized, not described in full."""
    news = [
        NewSaga(
            type=item.type,
            file_id=item.file_id,
            storage_element_id=item.storage_element_id,
            idempotency_key=item.idempotency_key,
            payload=item.payload,
        )
        for item in body.start
    ]
    completions = [Completion(item.saga_id, item.attributes, item.request_id) for item in body.complete]
    started, completed = await batches.run(news, completions, principal.sub)
    return {"start": [r.as_dict() for r in started], "complete": [r.as_dict() for r in completed]}


@router.get("/{saga_id}")
async def get_saga(
    saga_id: uuid.UUID, sagas: Sagas, _: Annotated[Principal, Depends(_reader)]
) -> dict[str, Any]:
    return await sagas.get(saga_id)


@router.post("/{saga_id}/complete")
async def complete_saga(
    saga_id: uuid.UUID, sagas: Sagas, principal: Internal, body: SagaCompletion | None = None
) -> dict[str, Any]:
    return await sagas.complete(saga_id, body.attributes if body else None, principal.sub)


@router.post("/{saga_id}/heartbeat")
async def saga_heartbeat(saga_id: uuid.UUID, sagas: Sagas, _: Internal) -> dict[str, Any]:
    """Keeps a long-running saga from being compensated as abandoned; 409 once it was."""
    return await sagas.heartbeat(saga_id)


@router.post("/{saga_id}/fail")
async def fail_saga(
    saga_id: uuid.UUID, body: SagaFailure, sagas: Sagas, principal: Internal
) -> dict[str, Any]:
    return await sagas.fail(saga_id, body.error, principal.sub)
