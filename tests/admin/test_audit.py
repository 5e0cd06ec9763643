"""The audit API: what gets recorded, paging, and the chain check against tampering in PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.infra import query
from tests.support.processes import AdminModule


@pytest.fixture
def api(admin: AdminModule) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=admin.url + "/api/v1", headers={"Authorization": f"Bearer {admin.token()}"}, timeout=30
    ) as client:
        yield client


def _all_records(api: httpx.Client, **filters: Any) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    after = None
    while True:
        params = {**filters, "limit": 2, **({"after": after} if after is not None else {})}
        page = api.get("/audit", params=params)
        assert page.status_code == 200, page.text
        records.extend(page.json()["items"])
        after = page.json()["next_after"]
        if after is None:
            return records


def _system_account(api: httpx.Client) -> dict[str, Any]:
    created = api.post(
        "/service-accounts", json={"name": f"svc-{uuid.uuid4().hex[:6]}", "role": "USER", "is_system": True}
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


def test_tokens_and_account_changes_are_recorded(admin: AdminModule, api: httpx.Client):
    account = _system_account(api)
    refused = httpx.post(
        admin.token_url,
        data={"grant_type": "client_credentials"},
        auth=(account["client_id"], "not-the-secret-7f3a"),
        timeout=10,
    )
    assert refused.status_code == 401

    created = [r for r in _all_records(api, action="account.created") if r["subject"] == account["id"]]
    refusals = [r for r in _all_records(api, action="token.refused") if r["subject"] == account["client_id"]]
    issued = _all_records(api, action="token.issued")
    assert len(created) == 1
    assert len(refusals) == 1
    assert refusals[0]["outcome"] == "failure"
    assert any(r["subject"] == admin.client_id for r in issued)
    assert "not-the-secret-7f3a" not in str(refusals[0])


def test_pages_follow_the_chain_without_gaps_or_repeats(api: httpx.Client):
    _system_account(api)
    whole = api.get("/audit", params={"limit": 1000}).json()["items"]
    paged = _all_records(api)
    assert [r["id"] for r in paged] == [r["id"] for r in whole]
    assert [r["id"] for r in paged] == sorted({r["id"] for r in paged})
    since = whole[-1]["occurred_at"]
    recent = api.get("/audit", params={"since": since}).json()["items"]
    assert recent
    assert all(r["occurred_at"] >= since for r in recent)
    for junk in ({"limit": 0}, {"limit": "many"}, {"after": -1}, {"since": "yesterday"}):
        response = api.get("/audit", params=junk)
        assert response.status_code == 422, (junk, response.text)


def test_services_record_events_with_internal_only(admin: AdminModule, api: httpx.Client):
    event = {"action": "file.downloaded", "outcome": "success", "subject": "f-1", "details": {"bytes": 5}}
    assert api.post("/audit/events", json=event).status_code == 403

    account = _system_account(api)
    token = admin.token(account["client_id"], account["client_secret"])
    headers = {"Authorization": f"Bearer {token}"}
    recorded = api.post("/audit/events", json=event, headers=headers)
    assert recorded.status_code == 201, recorded.text
    record = next(r for r in _all_records(api, action="file.downloaded") if r["id"] == recorded.json()["id"])
    assert record["actor"] == account["id"]
    assert record["service"] == account["client_id"]
    assert record["details"] == {"bytes": 5}

    for junk in (
        {**event, "action": "DROP TABLE"},
        {**event, "outcome": "maybe"},
        {**event, "details": "not an object"},
        {**event, "service": "admin"},
        {**event, "extra": True},
        {"outcome": "success"},
    ):
        response = api.post("/audit/events", json=junk, headers=headers)
        assert response.status_code == 422, (junk, response.text)


def _verify(admin: AdminModule) -> dict[str, Any]:
    response = httpx.get(
        admin.url + "/api/v1/audit/verify", headers={"Authorization": f"Bearer {admin.token()}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_verify_names_the_first_record_changed_or_removed_in_postgresql(
    make_admin: Callable[..., AdminModule],
):
    admin = make_admin()
    with httpx.Client(
        base_url=admin.url + "/api/v1", headers={"Authorization": f"Bearer {admin.token()}"}, timeout=30
    ) as client:
        for _ in range(3):
            _system_account(client)
    intact = _verify(admin)
    assert intact["valid"] is True
    assert intact["first_broken"] is None
    assert intact["checked"] >= 6
    table = f'"{admin.schema}".audit_log'
    middle = intact["checked"] // 2

    original = query(admin.database_url, f"SELECT details FROM {table} WHERE id = $1", middle)[0]["details"]
    query(admin.database_url, f"UPDATE {table} SET details = '{{\"forged\": true}}' WHERE id = $1", middle)
    edited = _verify(admin)
    assert edited["valid"] is False
    assert edited["first_broken"]["id"] == middle
    assert "hash" in edited["first_broken"]["reason"]

    query(admin.database_url, f"UPDATE {table} SET details = $2::jsonb WHERE id = $1", middle, original)
    assert _verify(admin)["valid"] is True

    query(admin.database_url, f"DELETE FROM {table} WHERE id = $1", middle)
    removed = _verify(admin)
    assert removed["valid"] is False
    assert removed["first_broken"]["id"] == middle + 1
    assert f"record {middle}" in removed["first_broken"]["reason"]
