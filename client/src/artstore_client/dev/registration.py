"""Registering the dev cluster's storage elements with its admin, once every service is up."""

from __future__ import annotations

import logging

import httpx

from artstore_client.dev.layout import StorageElementSpec

_log = logging.getLogger("artstore.dev")
REGISTRY_PATH = "/api/v1/storage-elements"


class RegistrationFailed(Exception):
    """The admin refused an element; the message carries its answer."""


async def register_elements(
    http: httpx.AsyncClient, admin_url: str, token: str, elements: list[StorageElementSpec]
) -> None:
    """Each element once; on a restart the admin already knows them, and its 409 says so."""
    headers = {"Authorization": f"Bearer {token}"}
    for spec in elements:
        response = await http.post(admin_url + REGISTRY_PATH, json={"url": spec.url}, headers=headers)
        if response.status_code in (200, 201):
            _log.info("registered the storage element at %s with the admin", spec.url)
        elif response.status_code == 409:
            await _bring_up_to_date(http, admin_url, headers, spec)
        elif response.status_code in (404, 405):
            _log.warning("this admin has no storage element registry yet; elements are not registered")
            return
        else:
            raise RegistrationFailed(
                f"the admin refused to register the storage element at {spec.url}: "
                f"HTTP {response.status_code} {response.text[:500]}"
            )


async def _bring_up_to_date(
    http: httpx.AsyncClient, admin_url: str, headers: dict[str, str], spec: StorageElementSpec
) -> None:
    """Until its next poll the admin lists a known element as it last saw it: offline (stopped with the
    previous dev up), perhaps at another port (another --base-port). The ingester sends files to online
    elements only, so the registry is brought up to date before the cluster is reported ready."""
    element_url = f"{admin_url}{REGISTRY_PATH}/{spec.element_id}"
    response = await http.post(element_url + "/sync", headers=headers)
    if response.status_code == 200 and response.json().get("url") != spec.url:
        response = await http.patch(element_url, json={"url": spec.url}, headers=headers)
        _log.info("the storage element %s moved to %s; the admin was told", spec.element_id, spec.url)
    if response.status_code != 200:
        raise RegistrationFailed(
            f"the admin could not bring its record of {spec.element_id} up to date: "
            f"HTTP {response.status_code} {response.text[:500]}"
        )
    if response.json().get("status") != "online":
        _log.warning("the admin still lists %s as %s", spec.element_id, response.json().get("status"))
