"""The SDK rides out a busy service: a request refused with 429 (or 503) is sent again after the wait the
service asks for, as long as its body can be sent again; and each stored file is stored once."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from artstore_client import ApiError, Client, RetryWait
from artstore_client.errors import _retry_after
from tests.client.conftest import cluster_env
from tests.support.cli import artstore
from tests.support.cluster import Cluster, _api

BURST = 3
# What the command line prints on stderr while it waits to send a refused request again.
WAITED = re.compile(
    r"artstore: the ingester answered RATE_LIMITED \(HTTP 429\); trying again in [1-6](\.\d)? s \(1 of 3\)"
)


def _limited_account(cluster: Cluster, per_minute: int = 60, burst: int = BURST) -> dict[str, str]:
    """A USER account with a budget of its own: `burst` requests at once, then `per_minute`."""
    with _api(cluster.admin, cluster.admin.token()) as api:
        made = api.post(
            "/service-accounts",
            json={
                "name": f"busy-{uuid.uuid4().hex[:6]}",
                "role": "USER",
                "rate_limit_per_minute": per_minute,
                "rate_limit_burst": burst,
            },
        )
    assert made.status_code == 201, made.text
    return dict(made.json())


def _first_refusal(client: Client, uploads: int) -> ApiError:
    for n in range(uploads):
        try:
            client.upload(b"x", filename=f"{n}.txt")
        except ApiError as refused:
            return refused
    raise AssertionError(f"none of {uploads} uploads was refused")


def _stored_with(client: Client, tag: str) -> list[str]:
    return sorted(info.original_filename for info in client.search(tags=[tag]))


def test_uploads_over_the_rate_limit_wait_and_each_file_is_stored_once(cluster: Cluster) -> None:
    waits: list[RetryWait] = []
    tag = f"retry-{uuid.uuid4().hex[:8]}"
    names = [f"doc-{n}.txt" for n in range(BURST + 3)]
    with cluster.sdk(_limited_account(cluster), on_retry_wait=waits.append) as client:
        stored = [client.upload(name.encode() * 100, filename=name, tags=[tag]) for name in names]
    assert [s.original_filename for s in stored] == names
    assert waits, "more uploads than the burst allows were sent without one refusal"
    assert all(w.status == 429 and w.code == "RATE_LIMITED" and w.service == "ingester" for w in waits)
    assert all(1 <= w.seconds <= 30 for w in waits)  # the service's Retry-After, not a guess
    with cluster.sdk(cluster.account("ADMIN")) as reader:
        assert _stored_with(reader, tag) == sorted(names)  # every file once: no retry stored a second copy


def test_without_retries_the_refusal_is_raised_at_once(cluster: Cluster) -> None:
    waits: list[RetryWait] = []
    with cluster.sdk(_limited_account(cluster), retries=0, on_retry_wait=waits.append) as client:
        refused = _first_refusal(client, BURST + 3)
    assert refused.status == 429
    assert refused.code == "RATE_LIMITED"
    assert (refused.retry_after or 0) >= 1
    assert waits == []


def test_a_wait_longer_than_allowed_is_not_taken(cluster: Cluster) -> None:
    waits: list[RetryWait] = []
    with cluster.sdk(_limited_account(cluster), max_retry_wait=0.5, on_retry_wait=waits.append) as client:
        refused = _first_refusal(client, BURST + 3)
    assert refused.status == 429
    assert waits == []  # Retry-After said at least 1 s


def test_an_upload_from_an_iterator_is_not_sent_twice(cluster: Cluster) -> None:
    waits: list[RetryWait] = []
    tag = f"once-{uuid.uuid4().hex[:8]}"
    with cluster.sdk(_limited_account(cluster), on_retry_wait=waits.append) as client:
        for n in range(BURST):
            client.upload(b"y", filename=f"spent-{n}.txt", tags=[tag])
        with pytest.raises(ApiError) as refused:
            client.upload(
                iter([b"an ", b"iterator ", b"cannot be replayed"]), filename="stream.txt", tags=[tag]
            )
    assert refused.value.status == 429
    assert waits == []
    with cluster.sdk(cluster.account("ADMIN")) as reader:
        assert "stream.txt" not in _stored_with(reader, tag)


def test_the_command_line_says_why_it_pauses_and_then_uploads(cluster: Cluster, tmp_path: Path) -> None:
    account = _limited_account(cluster, per_minute=10, burst=1)  # one upload, then one every 6 s
    with cluster.sdk(account) as client:
        client.upload(b"the budget's one upload", filename="first.txt")
    source = tmp_path / "second.txt"
    source.write_bytes(b"sent once the budget allows")
    env = {**cluster_env(cluster, account), "ARTSTORE_DATA_DIR": str(tmp_path / "none")}
    run = artstore("upload", source, env=env)
    assert run.status == 0, run.err
    assert run.out.split("  ")[1] == "second.txt"
    waited = run.err.splitlines()
    assert len(waited) == 1, run.err
    assert WAITED.fullmatch(waited[0]), waited[0]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("5", 5),
        (" 0 ", 0),
        (None, None),
        ("soon", None),
        ("-3", None),
        (format_datetime(datetime.now(UTC) - timedelta(minutes=1), usegmt=True), 0),
    ],
)
def test_retry_after_is_read_as_seconds_or_a_date(header: str | None, expected: int | None) -> None:
    assert _retry_after(header) == expected


def test_retry_after_as_a_date_in_the_future_counts_the_seconds_until_it() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    seconds = _retry_after(later)
    assert 15 <= (seconds or 0) <= 20
