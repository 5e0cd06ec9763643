"""The element streams: its resident memory must not grow with the size of the file."""

import hashlib
import threading

import pytest

from tests.support.files import generated, generated_sha256, put

LIMIT = 150 * 1024 * 1024


class PeakRss:
    def __init__(self, se) -> None:
        self.se = se
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.se.rss_bytes())
            self._stop.wait(0.05)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.slow
def test_resident_memory_stays_under_150_mib_for_a_2_gib_file(make_se, client_for):
    se = make_se("rw")
    client = client_for(se)
    size = 2 << 30
    with PeakRss(se) as receiving:
        response = put(client, generated(size, seed=2), filename="two-gib.bin")
    assert response.status_code == 201, response.text
    file_id = response.json()["file_id"]

    digest = hashlib.sha256()
    with PeakRss(se) as serving, client.stream("GET", f"/files/{file_id}") as download:
        for block in download.iter_bytes(1 << 20):
            digest.update(block)
    assert digest.hexdigest() == generated_sha256(size, seed=2)
    assert receiving.peak > 0
    assert receiving.peak < LIMIT, f"peak RSS while receiving: {receiving.peak / 2**20:.1f} MiB"
    assert serving.peak < LIMIT, f"peak RSS while serving: {serving.peak / 2**20:.1f} MiB"
