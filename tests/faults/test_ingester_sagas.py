"""SIGKILL of the ingester, the admin or a storage element in the middle of an upload saga (DESIGN section 4).

Each test streams a large file through the ingester, holds the stream at a fixed point so the fault lands
mid-upload for certain, kills one process and then checks what a user would see: the client gets an error
(never a hang, never a 201), the saga ends `compensated`, no catalog row and no byte of the file is left on
any element (no .bin, no attr.json, an empty tmp/). Small files acknowledged (201) before the fault must
still be in the catalog and readable from their element with the sha256 they were stored with.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from artstore_storage.storage.wal import read_unfinished
from tests.faults._polling import eventually
from tests.support.cluster import Cluster, ClusterFactory, attributes_header
from tests.support.files import files_on_disk, generated, tmp_entries
from tests.support.processes import StorageElement

pytestmark = pytest.mark.faults

MiB = 1 << 20
LARGE = 200 * MiB
HOLD_AT = 32 * MiB  # the body pauses here until the fault was injected
# Short saga timeouts so recovery runs within seconds; the ingester's heartbeat keeps a healthy upload alive.
ADMIN_SETTINGS = {"saga_timeout_seconds": 3, "saga_recovery_seconds": 1, "se_timeout_seconds": 1}
INGESTER_SETTINGS = {
    # These tests follow the held upload's saga by its id: no sagas started ahead, whose unused ones would
    # look the same (one test below finds its saga in the element's WAL instead, with reservations on).
    "saga_reservations": 0,
    "saga_heartbeat_seconds": 0.5,
    "complete_attempts": 2,
    "admin_timeout_seconds": 2,
    "se_timeout_seconds": 15,
}
RECOVERY_WITHIN = 30.0


@pytest.fixture
def cluster(make_cluster: ClusterFactory) -> Cluster:
    made = make_cluster(admin_settings=ADMIN_SETTINGS, ingester_settings=INGESTER_SETTINGS)
    eventually(
        lambda: httpx.get(f"{made.ingester.url}/health/ready", timeout=5).status_code == 200,
        within=30,
        what="ingester ready (signing keys and a discovery snapshot)",
    )
    return made


@pytest.fixture
def held_upload(cluster: Cluster) -> Iterator[Callable[[], HeldUpload]]:
    """Starts held uploads; any still held when the test ends is let go, so no thread outlives it."""
    started: list[HeldUpload] = []

    def start() -> HeldUpload:
        upload = HeldUpload(cluster.client(timeout=60)).start()
        started.append(upload)
        return upload

    yield start
    for upload in started:
        upload.resume()


@dataclass(frozen=True)
class Acknowledged:
    file_id: str
    element_id: str
    size: int
    sha256: str


def upload_small(cluster: Cluster, client: httpx.Client, count: int = 4) -> list[Acknowledged]:
    """Small uploads that must succeed, half temporary (edit element) and half permanent (rw element)."""
    acknowledged = []
    for n in range(count):
        retention = "temporary" if n % 2 else "permanent"
        acknowledged += upload_small_to(client, retention=retention, size=1024 + 997 * n)
    assert {a.element_id for a in acknowledged} == {se.element_id for se in cluster.elements.values()}
    return acknowledged


def upload_small_to(client: httpx.Client, *, retention: str, size: int = 1024) -> list[Acknowledged]:
    data = os.urandom(size)
    response = client.post(
        "/files",
        content=data,
        headers={
            "X-Artstore-Filename": f"small-{size}.bin",
            "Content-Type": "application/octet-stream",
            **attributes_header(retention={"policy": retention}),
        },
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["sha256"] == hashlib.sha256(data).hexdigest()
    return [Acknowledged(answer["file_id"], answer["storage_element_id"], len(data), answer["sha256"])]


class HeldUpload:
    """A large raw upload sent from a thread; its body stops after HOLD_AT bytes until `resume()`."""

    def __init__(self, client: httpx.Client, size: int = LARGE) -> None:
        self._client = client
        self._size = size
        self._resumed = threading.Event()
        self.held = threading.Event()
        self.response: httpx.Response | None = None
        self.error: httpx.HTTPError | None = None
        self._thread = threading.Thread(target=self._send, name="held-upload", daemon=True)

    def _body(self) -> Iterator[bytes]:
        sent = 0
        for piece in generated(self._size):
            if sent >= HOLD_AT and not self._resumed.is_set():
                self.held.set()
                self._resumed.wait(60)
            yield piece
            sent += len(piece)

    def _send(self) -> None:
        try:
            self.response = self._client.post(
                "/files",
                content=self._body(),
                headers={"X-Artstore-Filename": "large.bin", "Content-Type": "application/octet-stream"},
            )
        except httpx.HTTPError as exc:
            self.error = exc

    def start(self) -> HeldUpload:
        self._thread.start()
        return self

    def resume(self) -> None:
        self._resumed.set()

    def outcome(self, within: float) -> str:
        """Resume the body and wait for the client's answer; fails if the client hangs."""
        self.resume()
        self._thread.join(within)
        assert not self._thread.is_alive(), f"the client got no answer within {within} s"
        if self.response is not None:
            return f"{self.response.status_code} {self.response.text[:300]}"
        return f"{type(self.error).__name__}: {self.error}"


def running_upload_saga(cluster: Cluster, element: StorageElement) -> dict[str, Any]:
    """Once the held upload is mid-stream: its saga is `started` and the element holds a partial temp file."""

    def probe() -> dict[str, Any] | None:
        started = cluster.sagas(type="upload", status="started")
        partial = [p for p in tmp_entries(element.data_dir) if p.is_file() and p.stat().st_size > 0]
        if len(started) == 1 and partial:
            return dict(started[0])
        return None

    saga = eventually(
        probe, within=30, what="the large upload's saga started and bytes in the element's tmp/"
    )
    assert saga["storage_element_id"] == element.element_id
    return saga


def saga_steps(cluster: Cluster, saga_id: uuid.UUID) -> list[str]:
    token = cluster.admin.token(*cluster.system_account)
    response = httpx.get(
        f"{cluster.admin.url}/api/v1/sagas/{saga_id}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return [step["step"] for step in response.json()["steps"]]


def wait_compensated(cluster: Cluster, saga_id: uuid.UUID) -> None:
    def probe() -> str | None:
        [saga] = cluster.sagas(id=saga_id)
        return saga["status"] if saga["status"] in ("compensated", "failed", "completed") else None

    status = eventually(probe, within=RECOVERY_WITHIN, what=f"saga {saga_id} settled by the admin")
    assert status == "compensated", f"saga {saga_id} ended {status}: {cluster.sagas(id=saga_id)}"


def element_of(cluster: Cluster, element_id: str) -> StorageElement:
    return next(se for se in cluster.elements.values() if se.element_id == element_id)


def assert_no_trace(cluster: Cluster, file_id: str, kept: list[Acknowledged], token: str) -> None:
    """The interrupted file is nowhere: not in the catalog, not on any element's disk, not in any tmp/."""
    assert cluster.catalog(file_id) == []
    expected = {f"{a.file_id}{suffix}" for a in kept for suffix in (".bin", ".attr.json")}
    on_disk = {p.name for se in cluster.elements.values() for p in files_on_disk(se.data_dir)}
    assert on_disk == expected, f"left on the elements: {sorted(on_disk - expected)}"
    for name, se in cluster.elements.items():
        assert tmp_entries(se.data_dir) == [], f"tmp/ of the {name} element is not empty"
        response = httpx.get(
            f"{se.url}/api/v1/files/{file_id}", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert response.status_code == 404, response.text


def assert_kept(cluster: Cluster, kept: list[Acknowledged], token: str) -> None:
    """Every upload that answered 201 is in the catalog and readable from its element, byte for byte."""
    for ack in kept:
        [row] = cluster.catalog(ack.file_id)
        assert (row["storage_element_id"], row["size_bytes"], row["sha256"]) == (
            ack.element_id,
            ack.size,
            ack.sha256,
        )
        se = element_of(cluster, ack.element_id)
        response = httpx.get(
            f"{se.url}/api/v1/files/{ack.file_id}", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert response.status_code == 200, response.text
        assert hashlib.sha256(response.content).hexdigest() == ack.sha256


def test_ingester_killed_mid_upload_is_compensated_by_recovery(
    cluster: Cluster, held_upload: Callable[[], HeldUpload]
):
    client = cluster.client(timeout=60)
    token = cluster.token()
    kept = upload_small(cluster, client)
    rw = cluster.elements["rw"]
    upload = held_upload()
    saga = running_upload_saga(cluster, rw)

    cluster.ingester.kill()
    outcome = upload.outcome(within=30)

    # Nobody is left to answer: the client sees its connection dropped, not a 201.
    assert upload.response is None, outcome
    wait_compensated(cluster, saga["id"])
    steps = saga_steps(cluster, saga["id"])
    assert "timed_out" in steps, steps  # found by the recovery loop: nobody reported the failure
    assert "element_compensated" in steps, steps
    assert_no_trace(cluster, str(saga["file_id"]), kept, token)
    assert_kept(cluster, kept, token)


def saga_writing_to(cluster: Cluster, element: StorageElement) -> dict[str, Any]:
    """The saga of the one upload the element is writing now, named by its unfinished WAL transaction."""

    def probe() -> str | None:
        creating = [r for r in read_unfinished(element.data_dir / "wal") if r.op == "create"]
        partial = [p for p in tmp_entries(element.data_dir) if p.is_file() and p.stat().st_size > 0]
        return creating[0].saga_id if len(creating) == 1 and partial else None

    saga_id = eventually(probe, within=30, what="an upload in the element's WAL and bytes in its tmp/")
    [saga] = cluster.sagas(id=uuid.UUID(saga_id))
    return dict(saga)


def test_ingester_killed_mid_upload_on_a_saga_started_ahead_is_undone_with_its_unused_ones(
    make_cluster: ClusterFactory,
):
    # Reservations on; the admin's 8 s timeout lets the ingester keep one for 2 s, time to hand it over.
    cluster = make_cluster(
        admin_settings={**ADMIN_SETTINGS, "saga_timeout_seconds": 8},
        ingester_settings={**INGESTER_SETTINGS, "saga_reservations": 2},
    )
    eventually(
        lambda: httpx.get(f"{cluster.ingester.url}/health/ready", timeout=5).status_code == 200,
        within=30,
        what="ingester ready (signing keys and a discovery snapshot)",
    )
    client = cluster.client(timeout=60)
    token = cluster.token()
    kept = upload_small(cluster, client)
    rw = cluster.elements["rw"]
    # A permanent upload just before leaves a saga reserved on the rw element for the large one.
    kept += upload_small_to(client, retention="permanent")
    eventually(
        lambda: [s for s in cluster.unused_reservations() if s["storage_element_id"] == rw.element_id],
        within=10,
        what="a saga reserved on the rw element",
        every=0.05,
    )
    upload = HeldUpload(client).start()
    try:
        saga = saga_writing_to(cluster, rw)
        assert json.loads(saga["payload"]) == {"reservation": True}, saga  # taken, not started for it

        cluster.ingester.kill()
        outcome = upload.outcome(within=30)
    finally:
        upload.resume()

    assert upload.response is None, outcome
    wait_compensated(cluster, saga["id"])
    steps = saga_steps(cluster, saga["id"])
    assert "timed_out" in steps, steps
    assert "element_compensated" in steps, steps
    # The reservations it still held went the same way: nothing of the killed ingester is left running.
    eventually(
        lambda: cluster.sagas(status="started") == [], within=RECOVERY_WITHIN, what="every saga settled"
    )
    assert_no_trace(cluster, str(saga["file_id"]), kept, token)
    assert_kept(cluster, kept, token)


def test_admin_killed_before_complete_answers_503_and_recovery_undoes_the_file(
    cluster: Cluster, held_upload: Callable[[], HeldUpload]
):
    client = cluster.client(timeout=60)
    token = cluster.token()
    kept = upload_small(cluster, client)
    rw = cluster.elements["rw"]
    upload = held_upload()
    saga = running_upload_saga(cluster, rw)
    file_id = str(saga["file_id"])

    cluster.admin.kill()
    outcome = upload.outcome(within=45)

    assert upload.response is not None, outcome
    assert upload.response.status_code == 503, outcome
    assert upload.response.headers["content-type"].startswith("application/problem+json"), outcome
    problem = upload.response.json()
    assert (problem["status"], problem["code"]) == (503, "ADMIN_UNAVAILABLE"), problem
    assert problem["detail"], problem
    assert upload.response.headers.get("retry-after"), "a 503 should say when to retry"
    # The element stored the whole file before `complete` failed: only the saga's undo can remove it.
    assert f"{file_id}.bin" in {p.name for p in files_on_disk(rw.data_dir)}
    [stalled] = cluster.sagas(id=saga["id"])
    assert stalled["status"] == "started"
    assert cluster.catalog(file_id) == []

    cluster.admin.start()
    wait_compensated(cluster, saga["id"])
    steps = saga_steps(cluster, saga["id"])
    assert "timed_out" in steps, steps
    assert "element_compensated" in steps, steps
    assert_no_trace(cluster, file_id, kept, token)
    assert_kept(cluster, kept, token)


def test_element_killed_mid_upload_fails_the_client_and_leaves_nothing(
    cluster: Cluster, held_upload: Callable[[], HeldUpload]
):
    client = cluster.client(timeout=60)
    token = cluster.token()
    kept = upload_small(cluster, client)
    rw = cluster.elements["rw"]
    upload = held_upload()
    saga = running_upload_saga(cluster, rw)
    file_id = str(saga["file_id"])

    rw.kill()
    outcome = upload.outcome(within=30)

    # An error answer or a dropped connection, never a success.
    if upload.response is not None:
        assert upload.response.status_code >= 500, outcome
        assert upload.response.headers["content-type"].startswith("application/problem+json"), outcome
    assert cluster.catalog(file_id) == []
    [interrupted] = cluster.sagas(id=saga["id"])
    assert interrupted["status"] in ("started", "compensating"), dict(interrupted)
    # The killed element left its partial temp file behind: only its WAL recovery can clear it.
    assert tmp_entries(rw.data_dir), "expected the interrupted upload's temp file before the restart"

    rw.start()
    wait_compensated(cluster, saga["id"])
    assert "element_compensated" in saga_steps(cluster, saga["id"])
    assert_no_trace(cluster, file_id, kept, token)
    assert_kept(cluster, kept, token)


@pytest.fixture
def impatient_cluster(make_cluster: ClusterFactory) -> Cluster:
    """The ingester gives an element 2 s to take each piece of a body and to answer."""
    made = make_cluster(
        admin_settings=ADMIN_SETTINGS, ingester_settings={**INGESTER_SETTINGS, "se_timeout_seconds": 2}
    )
    eventually(
        lambda: httpx.get(f"{made.ingester.url}/health/ready", timeout=5).status_code == 200,
        within=30,
        what="ingester ready (signing keys and a discovery snapshot)",
    )
    return made


def test_a_slow_client_is_not_taken_for_a_stalled_element(impatient_cluster: Cluster):
    cluster = impatient_cluster
    upload = HeldUpload(cluster.client(timeout=60), size=HOLD_AT + 4 * MiB).start()
    running_upload_saga(cluster, cluster.elements["rw"])

    time.sleep(5)  # the client sends nothing for longer than the element's timeout
    outcome = upload.outcome(within=30)

    assert upload.response is not None, outcome
    assert upload.response.status_code == 201, outcome
    assert len(cluster.catalog(upload.response.json()["file_id"])) == 1


def test_an_element_that_stops_taking_the_body_fails_the_upload_in_time_and_leaves_nothing(
    impatient_cluster: Cluster,
):
    cluster = impatient_cluster
    token = cluster.token()
    kept = upload_small(cluster, cluster.client(timeout=60))
    rw = cluster.elements["rw"]
    upload = HeldUpload(cluster.client(timeout=60)).start()
    saga = running_upload_saga(cluster, rw)
    file_id = str(saga["file_id"])

    os.kill(rw.pid, signal.SIGSTOP)  # alive and connected, but reads nothing more
    try:
        # Without a deadline on the element the ingester would wait for it as long as the client waits.
        outcome = upload.outcome(within=30)
        if upload.response is not None:
            assert upload.response.status_code == 503, outcome
            assert "stopped taking the body" in upload.response.json()["detail"], outcome
        assert cluster.catalog(file_id) == []
    finally:
        os.kill(rw.pid, signal.SIGCONT)
    wait_compensated(cluster, saga["id"])
    assert_no_trace(cluster, file_id, kept, token)
    assert_kept(cluster, kept, token)
