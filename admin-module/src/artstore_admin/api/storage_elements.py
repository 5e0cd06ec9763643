"""Routes: storage_elements."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
