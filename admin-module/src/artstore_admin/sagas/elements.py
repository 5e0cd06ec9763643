"""The calls a saga makes to a storage element, with the admin's own internal token."""

from __future__ import annotations

import inspect
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI


class ElementUnreachable(Exception):
    """The element did not answer usefully; the step is retried later."""


class ElementRefused(Exception):
    """The element answered that it will never do this (e.g. archived); retrying cannot help."""


@dataclass
class ElementClient:
    app: FastAPI
    http: httpx.AsyncClient
    timeout_seconds: float

    async def _headers(self) -> dict[str, str]:
        tokens = getattr(self.app.state, "tokens", None)
        if tokens is None:
            raise ElementUnreachable("the admin has no token issuer yet")
        token: Any = tokens.internal_token()
        if inspect.isawaitable(token):
            token = await token
        return {"Authorization": f"Bearer {token}"}

    async def _call(self, method: str, url: str) -> httpx.Response:
        try:
            return await self.http.request(
                method, url, headers=await self._headers(), timeout=self.timeout_seconds
            )
        except httpx.HTTPError as exc:
            raise ElementUnreachable(f"{method} {url} failed: {type(exc).__name__}: {exc}") from exc

    async def compensate(self, base_url: str, saga_id: uuid.UUID) -> list[str]:
        """Undo what the saga stored on the element; returns the ids it removed. Idempotent there."""
        response = await self._call(
            "POST", f"{base_url.rstrip('/')}/api/v1/transactions/{saga_id}/compensate"
        )
        if response.status_code == 200:
            removed = response.json().get("removed_files", [])
            return [str(each) for each in removed] if isinstance(removed, list) else []
        if response.status_code == 409:
            raise ElementRefused(_detail(response))
        raise ElementUnreachable(f"the element answered {response.status_code}: {_detail(response)}")

    async def has_file(self, base_url: str, file_id: uuid.UUID) -> bool:
        response = await self._call("GET", f"{base_url.rstrip('/')}/api/v1/files/{file_id}/attributes")
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise ElementUnreachable(f"the element answered {response.status_code}: {_detail(response)}")


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)[:200]
