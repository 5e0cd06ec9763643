"""Which element takes an upload (DESIGN section 5), failover before the first byte, circuit breakers."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import redis

from artstore_common.discovery import discovery_key
from tests.support.cluster import Cluster, ClusterFactory, ElementSpec, wait_for
from tests.support.processes import StorageElement

KiB = 1 << 10


def _upload(cluster: Cluster, size: int, name: str = "f.bin") -> httpx.Response:
    return cluster.client().post("/files", content=b"\x5a" * size, headers={"X-Artstore-Filename": name})


def _snapshot_entry(cluster: Cluster, element_id: str) -> dict[str, Any]:
    with redis.Redis.from_url(cluster.admin.env["ARTSTORE_ADMIN_REDIS_URL"]) as client:
        raw = client.get(discovery_key(cluster.namespace))
    for entry in json.loads(raw or "{}").get("storage_elements", []):
        if entry["id"] == element_id:
            return dict(entry)
    return {}


def _wait_published(cluster: Cluster, element_id: str, **expected: str) -> None:
    wait_for(
        lambda: all(_snapshot_entry(cluster, element_id).get(k) == v for k, v in expected.items()),
        within=30,
        what=f"discovery shows {element_id} {expected}",
    )
    time.sleep(0.5)  # the ingester follows the channel; give the message a moment to arrive


def metric(cluster: Cluster, name: str, **labels: str) -> float:
    """The value of one sample in the ingester's /metrics, 0 when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in cluster.metrics().splitlines():
        match = re.match(r"^(\w+)\{(.*)\} (\S+)$", line)
        if match and match.group(1) == name and ",".join(sorted(match.group(2).split(","))) == wanted:
            return float(match.group(3))
    return 0.0


def test_full_read_only_and_offline_elements_are_skipped(make_cluster: ClusterFactory):
    cluster = make_cluster(
        modes=(
            ElementSpec("rw", {"quota_bytes": 64 * KiB}, {"priority": 300}),
            ElementSpec("rw", {}, {"priority": 200}),
            ElementSpec("rw", {"quota_bytes": 1024 * KiB}, {"priority": 100}),
        )
    )
    full, second, third = (cluster.elements[name] for name in ("rw", "rw2", "rw3"))

    assert _upload(cluster, 1 * KiB).json()["storage_element_id"] == full.element_id
    assert _upload(cluster, 100 * KiB).json()["storage_element_id"] == second.element_id

    with httpx.Client(
        base_url=f"{cluster.admin.url}/api/v1", headers={"Authorization": f"Bearer {cluster.admin.token()}"}
    ) as api:
        assert (
            api.post(f"/storage-elements/{second.element_id}/mode", json={"target_mode": "ro"}).status_code
            == 200
        )
    _wait_published(cluster, second.element_id, mode="ro")
    assert _upload(cluster, 100 * KiB).json()["storage_element_id"] == third.element_id

    third.kill()
    _wait_published(cluster, third.element_id, status="offline")
    none_left = _upload(cluster, 100 * KiB)
    assert none_left.status_code == 503, none_left.text
    assert "Retry-After" in none_left.headers
    detail = none_left.json()["detail"]
    assert f"'{full.element_id}' has" in detail
    assert f"'{second.element_id}' is in mode ro" in detail
    assert f"'{third.element_id}' is offline" in detail

    third.start()
    _wait_published(cluster, third.element_id, status="online")
    too_big = _upload(cluster, 2048 * KiB)
    assert too_big.status_code == 507, too_big.text
    assert too_big.json()["code"] == "INSUFFICIENT_STORAGE"
    assert "full" in too_big.json()["detail"]


def _registered_file_count(cluster: Cluster, element_id: str) -> int:
    answer = httpx.get(
        f"{cluster.admin.url}/api/v1/storage-elements/{element_id}",
        headers={"Authorization": f"Bearer {cluster.admin.token()}"},
        timeout=10,
    )
    return int(answer.json()["file_count"])


def _first_choice_stored_once(
    make_cluster: ClusterFactory, admin_settings: dict[str, Any], ingester_settings: dict[str, Any]
) -> tuple[Cluster, StorageElement, StorageElement]:
    """Two `rw` elements, the first preferred, which has taken one upload. The admin does not poll them: an
    element that goes away is the ingester's own to notice."""
    cluster = make_cluster(
        modes=(ElementSpec("rw", {}, {"priority": 200}), ElementSpec("rw", {}, {"priority": 100})),
        admin_settings={"se_poll_seconds": 3600, **admin_settings},
        ingester_settings=ingester_settings,
    )
    first, second = cluster.elements["rw"], cluster.elements["rw2"]
    assert _upload(cluster, KiB).json()["storage_element_id"] == first.element_id
    # The admin re-reads an element after an upload to it completes; let that happen before a kill.
    wait_for(lambda: _registered_file_count(cluster, first.element_id) == 1, within=10, what="the re-read")
    return cluster, first, second


def test_a_dead_first_choice_fails_over_then_its_circuit_opens_and_recovers(make_cluster: ClusterFactory):
    cluster, first, second = _first_choice_stored_once(
        make_cluster,
        {"saga_recovery_seconds": 1},
        # No readiness watch: this test is about the half-open probe after the recovery time.
        {"circuit_failure_threshold": 5, "circuit_recovery_seconds": 3, "circuit_probe_seconds": 0},
    )

    first.kill()
    for attempt in range(1, 6):
        response = _upload(cluster, KiB, f"failover-{attempt}.bin")
        assert response.status_code == 201, response.text
        assert response.json()["storage_element_id"] == second.element_id
        failed = metric(
            cluster,
            "artstore_ingester_element_attempts_total",
            storage_element=first.element_id,
            outcome="failed",
        )
        assert failed == attempt
    assert metric(cluster, "artstore_circuit_state", service="ingester", target=first.element_id) == 2

    # Open: the dead element is not even tried.
    assert _upload(cluster, KiB).json()["storage_element_id"] == second.element_id
    assert (
        metric(
            cluster,
            "artstore_ingester_element_attempts_total",
            storage_element=first.element_id,
            outcome="failed",
        )
        == 5
    )

    first.start()
    time.sleep(3.5)  # past circuit_recovery_seconds: the next upload is the half-open probe
    probe = _upload(cluster, KiB, "probe.bin")
    assert probe.status_code == 201, probe.text
    assert probe.json()["storage_element_id"] == first.element_id
    assert metric(cluster, "artstore_circuit_state", service="ingester", target=first.element_id) == 0
    # The failed attempts' sagas waited for the element to come back; the admin then settled them.
    wait_for(
        lambda: (
            {s["status"] for s in cluster.sagas_in_use(type="upload", storage_element_id=first.element_id)}
            == {"completed", "compensated"}
        ),
        within=60,
        what="every saga on the element that was down is settled",
    )


def test_a_restarted_element_is_used_again_as_soon_as_it_is_ready(make_cluster: ClusterFactory):
    cluster, first, second = _first_choice_stored_once(
        make_cluster,
        {},
        # A recovery time longer than the test: only the readiness watch can close the circuit in time.
        {"circuit_failure_threshold": 2, "circuit_recovery_seconds": 600, "circuit_probe_seconds": 0.2},
    )

    first.kill()
    for attempt in range(2):
        response = _upload(cluster, KiB, f"failover-{attempt}.bin")
        assert response.json()["storage_element_id"] == second.element_id, response.text
    assert metric(cluster, "artstore_circuit_state", service="ingester", target=first.element_id) == 2

    first.start()
    wait_for(
        lambda: metric(cluster, "artstore_circuit_state", service="ingester", target=first.element_id) == 0,
        within=15,
        what="the circuit of the restarted element closed by its readiness",
    )
    back = _upload(cluster, KiB, "back.bin")
    assert back.status_code == 201, back.text
    assert back.json()["storage_element_id"] == first.element_id
