"""HTTP calls from the admin to a storage element (registry, mode changes, saga compensation), with the
admin's internal token."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from artstore_admin.elements.errors import (
    ElementRefused,
    ElementUnreachable,
    NotAStorageElement,
)
from artstore_common.errors import UpstreamProblem

TokenSource = Callable[[], Awaitable[str]]
MODES = ("edit", "rw", "ro", "ar")


@dataclass(frozen=True)
class ElementInfo:
    id: str
    name: str
    mode: str
    priority: int | None
    capacity_bytes: int | None
    used_bytes: int | None
    free_bytes: int | None
    file_count: int | None
    raw: dict[str, Any]


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_info(url: str, document: object) -> ElementInfo:
    if not isinstance(document, dict):
        raise NotAStorageElement(
            f"{url}/api/v1/info did not answer a JSON object; is this a storage element?"
        )
    element_id, mode = document.get("id"), document.get("mode")
    if not isinstance(element_id, str) or not element_id or mode not in MODES:
        raise NotAStorageElement(
            f"{url}/api/v1/info has no element id or no known mode; is this a storage element?"
        )
    capacity = document.get("capacity")
    capacity = capacity if isinstance(capacity, dict) else {}
    name = document.get("name")
    return ElementInfo(
        id=element_id,
        name=name if isinstance(name, str) and name else element_id,
        mode=str(mode),
        priority=_int_or_none(document.get("priority")),
        capacity_bytes=_int_or_none(capacity.get("total")),
        used_bytes=_int_or_none(capacity.get("used")),
        free_bytes=_int_or_none(capacity.get("free")),
        file_count=_int_or_none(document.get("file_count")),
        raw=document,
    )


class ElementClient:
    def __init__(self, http: httpx.AsyncClient, token: TokenSource, timeout_seconds: float) -> None:
        self._http = http
        self._token = token
        self._timeout = timeout_seconds

    async def _call(self, method: str, url: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {await self._token()}"}
        try:
            return await self._http.request(
                method, f"{url}/api/v1{path}", json=body, headers=headers, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise ElementUnreachable(f"cannot reach the storage element at {url}: {reason}") from exc

    async def info(self, url: str) -> ElementInfo:
        response = await self._call("GET", url, "/info", None)
        if response.status_code in (401, 403):
            raise ElementRefused(
                f"the storage element at {url} refused the admin's token ({response.status_code}); "
                "check that its ARTSTORE_SE_JWKS_URL points at this admin's /.well-known/jwks.json"
            )
        if response.status_code != 200:
            raise NotAStorageElement(
                f"{url}/api/v1/info answered {response.status_code}; is this a storage element, and is it ready?"
            )
        try:
            document = response.json()
        except ValueError as exc:
            raise NotAStorageElement(
                f"{url}/api/v1/info did not answer JSON; is this a storage element?"
            ) from exc
        return parse_info(url, document)

    async def change_mode(self, url: str, target_mode: str) -> dict[str, Any]:
        response = await self._call("POST", url, "/mode", {"target_mode": target_mode})
        if response.status_code == 200:
            answer: dict[str, Any] = response.json()
            return answer
        if response.status_code >= 500:
            raise ElementUnreachable(
                f"the storage element at {url} failed the mode change ({response.status_code})"
            )
        raise _problem_from(url, response)

    async def compensate(self, url: str, saga_id: uuid.UUID) -> list[str]:
        """Undo what the saga stored on the element (idempotent there); the ids it removed.

        A 409 (say, an archived element) is final and raised as the element's problem; any other failure
        is ElementUnreachable, which the saga retries later.
        """
        response = await self._call("POST", url, f"/transactions/{saga_id}/compensate", None)
        if response.status_code == 200:
            removed = response.json().get("removed_files", [])
            return [str(each) for each in removed] if isinstance(removed, list) else []
        if response.status_code == 409:
            raise _problem_from(url, response)
        raise ElementUnreachable(
            f"the storage element at {url} answered {response.status_code} to compensate"
        )

    async def attributes(self, url: str, file_id: uuid.UUID) -> dict[str, Any] | None:
        """The file's attr.json as the element holds it; None when the element has no such file."""
        response = await self._call("GET", url, f"/files/{file_id}/attributes", None)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ElementUnreachable(
                f"the storage element at {url} answered {response.status_code} for a file"
            )
        document: dict[str, Any] = response.json()
        return document

    async def has_file(self, url: str, file_id: uuid.UUID) -> bool:
        return await self.attributes(url, file_id) is not None


def _problem_from(url: str, response: httpx.Response) -> UpstreamProblem:
    if response.status_code in (401, 403):
        # The caller was allowed by the admin; the element refusing the admin's own token is upstream trouble.
        return UpstreamProblem(
            502,
            "SE_REFUSED",
            "Storage element refused the admin",
            f"the storage element at {url} refused the admin's token ({response.status_code})",
        )
    return UpstreamProblem.from_response(response, f"storage element at {url}")
