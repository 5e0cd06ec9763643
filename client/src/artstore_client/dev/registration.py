"""Registering the dev cluster's storage elements with its admin, once every service is up."""

from __future__ import annotations

import logging

import httpx

_log = logging.getLogger("artstore.dev")
REGISTRY_PATH = "/api/v1/storage-elements"


class RegistrationFailed(Exception):
    """The admin refused an element; the message carries its answer."""


async def register_elements(http: httpx.AsyncClient, admin_url: str, token: str, urls: list[str]) -> None:
    """Each element once; on a restart the admin already knows them, and its 409 says so."""
    for url in urls:
        response = await http.post(
            admin_url + REGISTRY_PATH, json={"url": url}, headers={"Authorization": f"Bearer {token}"}
        )
        if response.status_code in (200, 201):
            _log.info("registered the storage element at %s with the admin", url)
        elif response.status_code == 409:
            continue
        elif response.status_code in (404, 405):
            _log.warning("this admin has no storage element registry yet; elements are not registered")
            return
        else:
            raise RegistrationFailed(
                f"the admin refused to register the storage element at {url}: "
                f"HTTP {response.status_code} {response.text[:500]}"
            )
