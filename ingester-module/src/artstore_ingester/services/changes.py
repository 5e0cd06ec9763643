"""Changing a stored file: metadata updates and deletes, each a saga the admin keeps (DESIGN section 4).

The admin resolves which element holds the file from its catalog when the saga starts. A failure after
that reports the saga failed: for an update the admin re-indexes the file from its attr.json (the truth
whether or not the change landed), for a delete it keeps the catalog row while the file exists.
"""

from __future__ import annotations

import uuid
from typing import Any

from artstore_common.auth import Principal
from artstore_common.discovery import DiscoveryClient
from artstore_common.errors import ModeNotAllowed
from artstore_ingester.clients.admin import AdminClient, Saga
from artstore_ingester.clients.elements import ElementClient
from artstore_ingester.services.selection import Element, element_by_id


class FileChanges:
    def __init__(self, *, discovery: DiscoveryClient, admin: AdminClient, elements: ElementClient) -> None:
        self._discovery = discovery
        self._admin = admin
        self._elements = elements

    async def update(
        self, file_id: uuid.UUID, changes: dict[str, Any], principal: Principal
    ) -> dict[str, Any]:
        # The names of the fields changed, not their values: those can be up to the attributes' own limits,
        # beyond what a saga's payload holds, and attr.json and the catalog row keep them anyway.
        saga = await self._admin.start(
            "update", file_id, payload={"changed": sorted(changes), "requested_by": principal.sub}
        )
        try:
            element = self._element(saga)
            attributes = await self._elements.patch_attributes(element.id, element.url, file_id, changes)
            await self._admin.complete(saga.id, attributes)
        except BaseException as exc:
            await self._admin.report_failure(saga.id, exc)
            raise
        return attributes

    async def delete(self, file_id: uuid.UUID, principal: Principal) -> dict[str, Any]:
        saga = await self._admin.start("delete", file_id, payload={"requested_by": principal.sub})
        try:
            element = self._element(saga)
            if element.mode != "edit":
                # DESIGN section 3: only `edit` elements delete; refuse before asking the element to.
                raise ModeNotAllowed(
                    f"file {file_id} is on '{element.id}', which is in mode {element.mode}; "
                    "files can be deleted only from an element in mode edit",
                    extra={"mode": element.mode, "operation": "delete"},
                )
            await self._elements.delete(element.id, element.url, file_id)
            await self._admin.complete(saga.id, None)
        except BaseException as exc:
            await self._admin.report_failure(saga.id, exc)
            raise
        return {"file_id": str(file_id), "deleted": True, "storage_element_id": element.id}

    def _element(self, saga: Saga) -> Element:
        return element_by_id(self._discovery.storage_elements, saga.storage_element_id)
