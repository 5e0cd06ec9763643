from __future__ import annotations

import uuid

from fastapi import Request

from artstore_storage.services.element import ElementService
from artstore_storage.services.files import FileService
from artstore_storage.services.reconcile import Reconciler
from artstore_storage.storage.layout import parse_file_id


def files(request: Request) -> FileService:
    service: FileService = request.app.state.files
    return service


def element(request: Request) -> ElementService:
    service: ElementService = request.app.state.element
    return service


def reconciler(request: Request) -> Reconciler:
    service: Reconciler = request.app.state.reconciler
    return service


def file_id(file_id: str) -> uuid.UUID:
    return parse_file_id(file_id)
