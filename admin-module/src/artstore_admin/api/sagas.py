"""Routes: sagas."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
