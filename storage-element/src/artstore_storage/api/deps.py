"""Dependencies, async on purpose: FastAPI runs plain `def` ones in a worker thread, a hop per request."""

from __future__ import annotations

import uuid

from fastapi import Request

from artstore_storage.services.element import ElementService
from artstore_storage.services.files import FileService
from artstore_storage.services.reconcile import Reconciler
from artstore_storage.storage.layout import parse_file_id


async def files(request: Request) -> FileService:
    service: FileService = request.app.state.files
    return service


async def element(request: Request) -> ElementService:
    service: ElementService = request.app.state.element
    return service


async def reconciler(request: Request) -> Reconciler:
    service: Reconciler = request.app.state.reconciler
    return service


async def file_id(file_id: str) -> uuid.UUID:
    return parse_file_id(file_id)
