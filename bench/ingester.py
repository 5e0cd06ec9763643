"""The ingester benchmark: uploads end to end (client -> ingester -> element, with the admin's saga) beside
the same bytes PUT straight to the element, both in one cluster and one run.

The element-direct requests carry the ingester's own system token and no X-Saga-Id: what the element does
for the ingester, without the saga and the extra hop. The difference between the two is the ingester's cost.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
import uvloop

from bench import workloads
from bench.cluster import IngestCluster, ingester_cluster_under_test
from bench.cpu import CpuLedger
from bench.payload import LargeStream, SmallFiles
from bench.profile import FULL, QUICK, GiB, MiB, Profile
from bench.rawhttp import BareConnection
from bench.report import Goal, Log, Metric, machine_info, table, write_results
from bench.storage import _percentile

STREAM_RATIO = 0.80
SMALL_TARGET = 300.0
SWIFT_REFERENCE = {
    "system": "OpenStack Swift",
    "uploads_per_second": 150,
    "source": "the issue's figure for small objects on this machine; not measured by this run",
}
_TIMEOUT = httpx.Timeout(300.0, connect=10.0)
_PROCESSES = ("client", "ingester", "admin", "element", "postgres_redis")
_CPU_NOTE = (
    "postgres_redis counts the PostgreSQL backends of the run's database alive when a phase starts (and Redis "
    "when embedded); backends opened during a phase, when a connection pool grows past its size, and the "
    "server's shared WAL writer are not counted, so it is a lower bound"
)


# --- CPU by process -------------------------------------------------------------------------------------


def _cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    found = {}
    for name, pid in pids.items():
        times = psutil.Process(pid).cpu_times()
        found[name] = float(times.user + times.system)
    return found


@contextmanager
def _measure(ledger: CpuLedger, cluster: IngestCluster) -> Iterator[dict[str, float]]:
    """One phase's CPU seconds by process, filled in when the phase ends.

    The ledger counts this client, the element, and as helpers every other child of this process plus the
    PostgreSQL backends serving the run's database: the ingester and the admin are children too, so their
    shares are read here and taken out of the helpers, which leaves PostgreSQL and Redis.
    """
    services = {"ingester": cluster.ingester.pid, "admin": cluster.admin.pid}
    split: dict[str, float] = {}
    with ledger.measure() as meter:
        before = _cpu_seconds(services)
        yield split
        after = _cpu_seconds(services)
    usage = meter.usage
    own = {name: after[name] - before[name] for name in services}
    split.update(
        wall_seconds=usage.wall_seconds,
        client=usage.client_seconds,
        ingester=own["ingester"],
        admin=own["admin"],
        element=usage.element_seconds,
        postgres_redis=max(usage.helpers_seconds - sum(own.values()), 0.0),
        rest_of_machine=usage.rest_seconds,
        machine_busy_fraction=usage.as_dict()["machine_busy_fraction"],
    )
    for name, value in split.items():
        split[name] = round(value, 3)


# --- what the client sends ------------------------------------------------------------------------------


def _ingester_headers(token: str, filename: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "X-Artstore-Filename": filename,
        "Content-Type": "application/octet-stream",
        **(extra or {}),
    }


def _check_stored(status: int, body: bytes | str, size: int, sha256: str, what: str) -> None:
    if status != 201:
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        raise workloads.UnexpectedResponse(f"{what}: HTTP {status} (wanted 201): {text[:500]}")
    stored = json.loads(body)
    if stored["size_bytes"] != size or stored["sha256"] != sha256:
        raise workloads.UnexpectedResponse(
            f"{what} stored {stored['size_bytes']} bytes, sha256 {stored['sha256']}"
        )


async def _ingest_stream(api_url: str, token: str, stream: LargeStream, sha256: str) -> float:
    """POST one body from a generator through the ingester, as workloads.upload_stream PUTs it to the element."""
    headers = _ingester_headers(
        token, "large.bin", {"Content-Length": str(stream.size), "X-Checksum-SHA256": sha256}
    )
    async with httpx.AsyncClient(base_url=api_url, timeout=_TIMEOUT) as client:
        started = time.perf_counter()
        response = await client.post("/files", content=stream.achunks(), headers=headers)
        seconds = time.perf_counter() - started
    _check_stored(response.status_code, response.text, stream.size, sha256, "large upload via the ingester")
    return seconds


SmallUpload = Callable[[SmallFiles, int], Coroutine[Any, Any, workloads.SmallUploads]]


def _ingest_small(api_url: str, token: str) -> SmallUpload:
    """httpx.AsyncClient, one keep-alive connection per worker: the storage suite's headline client."""

    async def run(files: SmallFiles, concurrency: int) -> workloads.SmallUploads:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        latencies = [0.0] * len(files.contents)
        headers = _ingester_headers(token, "small.bin")
        pending = iter(range(len(files.contents)))
        async with httpx.AsyncClient(
            base_url=api_url, timeout=_TIMEOUT, limits=limits, headers=headers
        ) as client:

            async def worker() -> None:
                for index in pending:
                    started = time.perf_counter()
                    response = await client.post("/files", content=files.contents[index])
                    latencies[index] = time.perf_counter() - started
                    size, sha256 = len(files.contents[index]), files.sha256[index]
                    _check_stored(response.status_code, response.text, size, sha256, f"small upload {index}")

            # Open the connections before the clock starts, so the count measures uploads, not handshakes.
            live = urlsplit(api_url)._replace(path="/health/live").geturl()
            await asyncio.gather(*(client.get(live) for _ in range(concurrency)))
            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            seconds = time.perf_counter() - started
        return workloads.SmallUploads(seconds, latencies, [])

    return run


def _ingest_small_bare(api_url: str, token: str) -> SmallUpload:
    """The same uploads on bare keep-alive connections, whose CPU cost is about a tenth of httpx's."""

    async def run(files: SmallFiles, concurrency: int) -> workloads.SmallUploads:
        latencies = [0.0] * len(files.contents)
        headers = _ingester_headers(token, "small.bin")
        path = f"{urlsplit(api_url).path}/files"
        pending = iter(range(len(files.contents)))
        connections = [await BareConnection.open(api_url) for _ in range(concurrency)]

        async def worker(connection: BareConnection) -> None:
            for index in pending:
                started = time.perf_counter()
                status, body = await connection.request("POST", path, headers, files.contents[index])
                latencies[index] = time.perf_counter() - started
                _check_stored(
                    status, body, len(files.contents[index]), files.sha256[index], f"small upload {index}"
                )

        try:
            started = time.perf_counter()
            await asyncio.gather(*(worker(c) for c in connections))
            seconds = time.perf_counter() - started
        finally:
            for connection in connections:
                await connection.close()
        return workloads.SmallUploads(seconds, latencies, [])

    return run


# --- one large stream -----------------------------------------------------------------------------------


def large_upload(cluster: IngestCluster, profile: Profile, ledger: CpuLedger, log: Log) -> Metric:
    stream = LargeStream(profile.large_bytes, profile.chunk_bytes)
    sha256 = stream.sha256()
    size = profile.large_bytes
    direct_rates: list[float] = []
    ingested_rates: list[float] = []
    cpu: list[dict[str, Any]] = []
    for number in range(1, profile.large_rounds + 1):
        # Alternate which goes first, so neither always meets the disk just after the other's fsync.
        order = ("direct", "ingester") if number % 2 == 1 else ("ingester", "direct")
        target = cluster.element_target()
        token = cluster.token(cluster.client)
        for path in order:
            with _measure(ledger, cluster) as split:
                if path == "direct":
                    seconds = uvloop.run(workloads.upload_stream(target, stream, sha256)).seconds
                else:
                    seconds = uvloop.run(_ingest_stream(cluster.ingester_api, token, stream, sha256))
            rate = profile.large_bytes / MiB / seconds
            (direct_rates if path == "direct" else ingested_rates).append(rate)
            cpu.append({"round": number, "path": path, "mib_per_s": round(rate, 2), **split})
        log(
            f"  round {number} ({order[0]} first): element direct {direct_rates[-1]:.0f} MiB/s, "
            f"through the ingester {ingested_rates[-1]:.0f} MiB/s ({ingested_rates[-1] / direct_rates[-1]:.2f} x)"
        )
    return Metric(
        name="ingester_large_upload_throughput",
        title=f"upload via ingester, one {profile.large_label} stream",
        unit="MiB/s",
        value=statistics.median(ingested_rates),
        samples=ingested_rates,
        baseline_name="the same stream PUT straight to the element (ingester's token, no saga)",
        baseline=statistics.median(direct_rates),
        baseline_samples=direct_rates,
        goal=Goal("ratio", STREAM_RATIO, f">= {STREAM_RATIO:.2f} x SE direct"),
        details={
            "bytes": profile.large_bytes,
            "chunk_bytes": profile.chunk_bytes,
            "rounds": profile.large_rounds,
            "aggregate": "median of rounds; odd rounds go to the element directly first, even rounds "
            "through the ingester first",
            "client": "httpx.AsyncClient, body from an async generator, Content-Length and X-Checksum-SHA256 "
            "(the storage suite's client; POST /api/v1/files to the ingester, PUT to the element)",
            # Disk writeback stalls move both paths by 2x or more between rounds on shared hardware; the
            # ratio within a round and the CPU each path spends per GiB hold still better than the rates.
            "paired_ratios": [round(i / d, 3) for i, d in zip(ingested_rates, direct_rates, strict=True)],
            "cpu_seconds_per_gib": {
                path: {
                    name: round(statistics.median(c[name] for c in cpu if c["path"] == path) * GiB / size, 3)
                    for name in ("client", "ingester", "element")
                }
                for path in ("direct", "ingester")
            },
            "cpu_seconds": cpu,
        },
    )


# --- many small files -----------------------------------------------------------------------------------


@dataclass
class _Series:
    """One client's small-upload rounds against one path."""

    upload: SmallUpload
    rates: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    cpu: list[dict[str, float]] = field(default_factory=list)

    def run(self, cluster: IngestCluster, files: SmallFiles, concurrency: int, ledger: CpuLedger) -> None:
        with _measure(ledger, cluster) as split:
            result = uvloop.run(self.upload(files, concurrency))
        self.rates.append(len(files.contents) / result.seconds)
        self.latency_ms += [s * 1000 for s in result.latencies]
        self.cpu.append(split)

    def summary(self) -> dict[str, Any]:
        uploads = len(self.latency_ms)
        per_upload = {
            name: round(sum(c[name] for c in self.cpu) * 1000 / uploads, 3)
            for name in (*_PROCESSES, "rest_of_machine")
        }
        cluster_ms = sum(per_upload[name] for name in _PROCESSES)
        cores = psutil.cpu_count() or 1
        return {
            "value": round(statistics.median(self.rates), 2),
            "samples": [round(r, 2) for r in self.rates],
            "latency_ms": {
                "p50": round(_percentile(self.latency_ms, 0.50), 2),
                "p90": round(_percentile(self.latency_ms, 0.90), 2),
                "p99": round(_percentile(self.latency_ms, 0.99), 2),
                "max": round(max(self.latency_ms), 2),
                "over": f"all {uploads} measured uploads",
            },
            "cpu_ms_per_upload": {**per_upload, "total": round(cluster_ms, 3)},
            "cpu_bound_ceiling_per_second": {
                "value": round(cores * 1000 / cluster_ms, 1),
                "what": f"uploads/s if the {cores} cores did nothing but this work at this cost per upload "
                "(client and services, rest of machine excluded)",
                # Each service is one process with one event loop, so it cannot use more than one core.
                "per_service_process": {
                    name: round(1000 / per_upload[name], 1) if per_upload[name] else None
                    for name in ("ingester", "admin", "element")
                },
            },
            "cpu": self.cpu,
            "cpu_note": _CPU_NOTE,
        }


def small_uploads(cluster: IngestCluster, profile: Profile, ledger: CpuLedger, log: Log) -> Metric:
    target = cluster.element_target()
    token = cluster.token(cluster.client)
    api = cluster.ingester_api
    direct = _Series(lambda files, concurrency: workloads.upload_small(target, files, concurrency))
    ingested = _Series(_ingest_small(api, token))
    bare = _Series(_ingest_small_bare(api, token))
    warmup = SmallFiles.random(profile.small_warmup, profile.small_bytes)
    uvloop.run(direct.upload(warmup, profile.concurrency))
    uvloop.run(ingested.upload(warmup, profile.concurrency))
    for number in range(1, profile.small_rounds + 1):
        # Back to back in each round: the disk's fsync rate drifts within minutes on shared hardware.
        files = SmallFiles.random(profile.small_count, profile.small_bytes)
        direct.run(cluster, files, profile.concurrency, ledger)
        ingested.run(cluster, files, profile.concurrency, ledger)
        bare.run(
            cluster, SmallFiles.random(profile.small_count, profile.small_bytes), profile.concurrency, ledger
        )
        log(
            f"  round {number}: element direct {direct.rates[-1]:.0f} uploads/s; through the ingester "
            f"{ingested.rates[-1]:.0f} (httpx), {bare.rates[-1]:.0f} (bare client)"
        )
    # The headline is the bare client's, as in the storage suite: client and cluster share this machine's two
    # cores, and httpx spends about 1.3 ms of CPU per request, as much as the ingester itself. The httpx
    # figure stays in the details.
    headline = bare.summary()
    return Metric(
        name="ingester_small_uploads_per_second",
        title=f"{profile.small_bytes // 1024} KiB uploads via ingester, concurrency {profile.concurrency}",
        unit="files/s",
        value=statistics.median(bare.rates),
        samples=bare.rates,
        baseline_name="the same files PUT straight to the element (ingester's token, no saga)",
        baseline=statistics.median(direct.rates),
        baseline_samples=direct.rates,
        goal=Goal("absolute", SMALL_TARGET, f">= {SMALL_TARGET:.0f} files/s"),
        details={
            "file_bytes": profile.small_bytes,
            "count_per_round": profile.small_count,
            "rounds": profile.small_rounds,
            "warmup_count": profile.small_warmup,
            "concurrency": profile.concurrency,
            "aggregate": "median of rounds; each round runs the element directly, then the ingester with "
            "each client",
            "client": "bare keep-alive HTTP/1.1 connections (bench/rawhttp.py), one per concurrent worker; "
            "each answer's status, size and sha256 checked",
            "per_upload": "POST to the ingester: saga start at the admin (coalesced with other uploads' "
            "starts and completions into POST /api/v1/sagas/batch), PUT to the element, saga completion at "
            "the admin (catalog row, likewise coalesced), then 201",
            "latency_ms": headline["latency_ms"],
            "cpu_ms_per_upload": headline["cpu_ms_per_upload"],
            "cpu_bound_ceiling_per_second": headline["cpu_bound_ceiling_per_second"],
            "cpu": headline["cpu"],
            "element_direct": {"what": "the baseline's own figures (httpx client)", **direct.summary()},
            "httpx_client": {
                "what": "the same uploads through the ingester from httpx.AsyncClient, one keep-alive "
                "connection per concurrent worker: the client's CPU is on the same two cores",
                **ingested.summary(),
            },
            "reference": SWIFT_REFERENCE,
        },
    )


# --- the suite ------------------------------------------------------------------------------------------


def _diagnostics(large: Metric, small: Metric) -> list[str]:
    cpu = small.details["cpu_ms_per_upload"]
    latency = small.details["latency_ms"]
    httpx_client = small.details["httpx_client"]
    direct = small.details["element_direct"]
    return [
        f"small uploads via ingester (bare client): p50 {latency['p50']} ms, p99 {latency['p99']} ms; CPU per "
        "upload: "
        + ", ".join(f"{name} {cpu[name]} ms" for name in _PROCESSES)
        + f" (total {cpu['total']} ms: at most {small.details['cpu_bound_ceiling_per_second']['value']:.0f}/s "
        "on this machine's cores)",
        "one process per service caps uploads/s at: "
        + ", ".join(
            f"{name} {ceiling:.0f}"
            for name, ceiling in small.details["cpu_bound_ceiling_per_second"]["per_service_process"].items()
            if ceiling is not None
        ),
        f"small uploads via ingester (httpx): {httpx_client['value']:.0f} files/s, p50 "
        f"{httpx_client['latency_ms']['p50']} ms, CPU per upload {httpx_client['cpu_ms_per_upload']['total']} ms",
        f"element direct (httpx): {direct['value']:.0f} files/s, CPU per upload "
        f"{direct['cpu_ms_per_upload']['total']} ms; OpenStack Swift reference: about "
        f"{SWIFT_REFERENCE['uploads_per_second']}/s (not measured here)",
        f"large stream: ingester {large.value:.0f} MiB/s, element direct {large.baseline:.0f} MiB/s; ratio "
        f"within each round {', '.join(f'{r:.2f}' for r in large.details['paired_ratios'])}; CPU seconds per "
        "GiB (client, ingester, element): "
        + "; ".join(
            f"{path} {', '.join(str(v) for v in spent.values())}"
            for path, spent in large.details["cpu_seconds_per_gib"].items()
        ),
    ]


def main(results_dir: Path, workdir: Path, *, quick: bool, log: Log) -> list[Metric]:
    profile = QUICK if quick else FULL
    started = datetime.now(UTC)
    clock = time.perf_counter()
    with ingester_cluster_under_test(workdir) as cluster:
        log(
            f"ingester {cluster.ingester.url}, admin {cluster.admin.url}, element {cluster.element.url} "
            f"(PostgreSQL {cluster.postgres}, Redis {cluster.redis})"
        )
        ledger = CpuLedger(cluster.element.pid, cluster.database)
        log(f"upload of one {profile.large_label} stream, through the ingester and to the element directly")
        large = large_upload(cluster, profile, ledger, log)
        log(
            f"{profile.small_count} uploads of {profile.small_bytes} bytes, concurrency {profile.concurrency}"
        )
        small = small_uploads(cluster, profile, ledger, log)
        neighbours = ledger.summary()
    metrics = [large, small]
    document = {
        "benchmark": "ingester",
        "profile": profile.name,
        "started_at": started.isoformat(),
        "duration_seconds": round(time.perf_counter() - clock, 1),
        "machine": machine_info(workdir),
        "setup": {
            "processes": "python -m artstore_admin, python -m artstore_storage (mode rw, registered with the "
            "admin, trusting its JWKS), python -m artstore_ingester (a system account); all real processes",
            "postgres": cluster.postgres,
            "redis": cluster.redis,
            "client_account": "role USER with a per-account rate limit of 1,000,000/min: the limiter runs "
            "on every request but never refuses one",
            "intervals": "as tests.support sets them: element heartbeat, admin element poll and JWKS refetch "
            "every second, faster than the defaults; their background CPU (about 10 ms a second in the admin) "
            "is inside the figures",
            "note": "client, ingester, admin, element, PostgreSQL and Redis share this machine's cores",
        },
        "other_work_on_the_machine": neighbours,
        "metrics": [m.as_dict() for m in metrics],
        "all_targets_met": all(m.met for m in metrics),
    }
    stamped, _ = write_results(document, results_dir, started, suite="ingester")
    log("")
    log(table(metrics, measured="ingester"))
    for line in _diagnostics(large, small):
        log(line)
    log(f"results: {stamped} (and latest-ingester.json)")
    if neighbours["disturbed"]:
        log(
            f"warning: up to {neighbours['worst_rest_of_machine_fraction']:.0%} of the machine ran other work "
            "during a phase; compare ratios, not absolute numbers, or rerun on a quiet machine"
        )
    return metrics
