"""python -m bench [--quick] [--suite ...]: run the benchmarks and write bench/results/*.json."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # `tests.support` starts the element exactly as the tests do

from bench import admin, ingester, query, storage  # noqa: E402
from bench.cluster import storage_element_under_test  # noqa: E402
from bench.cpu import CpuLedger  # noqa: E402
from bench.profile import FULL, QUICK  # noqa: E402
from bench.report import Log, Metric, machine_info, table, write_results  # noqa: E402


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a reduced run (a 64 MiB stream, 300 small files, a 100,000-row catalog, a 128 MiB download)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="parent of the scratch directory holding the element's data and the baselines' files "
        "(default: the system temp dir); both always share it, so they measure the same disk",
    )
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "bench" / "results")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory for inspection")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--suite",
        choices=("all", "storage", "admin", "ingester", "query"),
        default="all",
        help="which benchmarks to run",
    )
    return parser.parse_args(argv)


# pgserver asks platformdirs for a runtime dir it does not need; the tests silence the same warning.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def _log(message: str) -> None:
    print(message, flush=True)


def _diagnostics(upload: Metric, small: Metric, download: Metric) -> list[str]:
    latency = small.details["latency_ms"]
    steps = small.details["write_steps_ms"]
    httpx_small = small.details["httpx_client"]
    protocol = small.details["baseline_write_protocol"]
    cpu = small.details["cpu_ms_per_upload"]
    httpx_download = download.details["httpx_client"]
    warm = download.details["page_cache"]
    return [
        f"small uploads (bare client): p50 {latency['p50']} ms, p99 {latency['p99']} ms; CPU per upload: "
        f"client {cpu['client']} ms, element {cpu['element']} ms, PostgreSQL+Redis {cpu['postgres_redis']} ms",
        f"small uploads (httpx): {httpx_small['value']:.0f} files/s, p50 {httpx_small['latency_ms']['p50']} "
        f"ms, client CPU {httpx_small['cpu_ms_per_upload']['client']} ms per upload; raw loop through the "
        f"write protocol: {protocol['value']:.0f} files/s",
        "small uploads (bare client), mean ms per write step: "
        + ", ".join(f"{step} {ms}" for step, ms in steps.items() if step != "what"),
        f"download, evicted (httpx): {httpx_download['value']:.0f} MiB/s; from the page cache: plain read "
        f"{warm['httpx']['plain_read']:.0f} MiB/s, SE {warm['httpx']['value']:.0f} MiB/s (httpx), "
        f"{warm['bare_socket']['value']:.0f} MiB/s (bare client)",
    ]


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    missed_storage = _storage(args) if args.suite in ("all", "storage") else False
    suites: tuple[tuple[str, _Suite], ...] = (
        ("admin", admin.main),
        ("ingester", ingester.main),
        ("query", query.main),
    )
    missed = missed_storage
    for name, suite in suites:
        if args.suite in ("all", name):
            missed = _run_suite(name, suite, args) or missed
    return 1 if missed and args.strict else 0


class _Suite(Protocol):
    def __call__(self, results_dir: Path, workdir: Path, *, quick: bool, log: Log) -> list[Metric]: ...


def _run_suite(name: str, suite: _Suite, args: argparse.Namespace) -> bool:
    """One suite's `main` in a scratch directory of its own; whether it missed a target."""
    scratch = Path(tempfile.mkdtemp(prefix=f"artstore-bench-{name}-", dir=args.workdir))
    _log(f"{name} benchmark ({'quick' if args.quick else 'full'}) in {scratch}")
    try:
        metrics = suite(args.results, scratch, quick=args.quick, log=_log)
    finally:
        if args.keep:
            _log(f"scratch directory kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return _report_missed(metrics)


def _report_missed(metrics: list[Metric]) -> bool:
    missed = [m.title for m in metrics if not m.met]
    if missed:
        _log("targets missed: " + "; ".join(missed))
    return bool(missed)


def _storage(args: argparse.Namespace) -> bool:
    profile = QUICK if args.quick else FULL
    started = datetime.now(UTC)
    clock = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="artstore-bench-", dir=args.workdir))
    raw_dir = scratch / "raw"
    raw_dir.mkdir()
    _log(f"storage element benchmark ({profile.name}) in {scratch}")
    try:
        with storage_element_under_test(scratch) as target:
            _log(f"element up at {target.element.url} (PostgreSQL {target.postgres}, Redis {target.redis})")
            ledger = CpuLedger(target.element.pid, target.database)
            _log(f"upload of one {profile.large_label} stream")
            upload, file_id = storage.large_upload(target, profile, raw_dir, ledger, _log)
            _log(f"download of the same {profile.large_label} file")
            download = storage.large_download(target, profile, file_id, ledger, _log)
            _log(f"{profile.small_count} uploads of {profile.small_bytes} bytes")
            small = storage.small_uploads(target, profile, raw_dir, ledger, _log)
            setup: dict[str, Any] = {
                "element": "python -m artstore_storage (real process, mode rw)",
                "postgres": target.postgres,
                "redis": target.redis,
                "note": "client, element, PostgreSQL and Redis share this machine's cores; the element's data "
                "and the baselines' files share the scratch directory, PostgreSQL's data lives where "
                "tests.support puts it",
            }
            neighbours = ledger.summary()
    finally:
        if args.keep:
            _log(f"scratch directory kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    metrics = [upload, small, download]
    document = {
        "benchmark": "storage-element",
        "profile": profile.name,
        "started_at": started.isoformat(),
        "duration_seconds": round(time.perf_counter() - clock, 1),
        "machine": machine_info(scratch.parent),
        "setup": setup,
        "other_work_on_the_machine": neighbours,
        "metrics": [m.as_dict() for m in metrics],
        "all_targets_met": all(m.met for m in metrics),
    }
    stamped, _ = write_results(document, args.results, started)
    _log("")
    _log(table(metrics))
    for line in _diagnostics(upload, small, download):
        _log(line)
    _log(f"results: {stamped} (and latest-storage.json)")
    if neighbours["disturbed"]:
        _log(
            f"warning: up to {neighbours['worst_rest_of_machine_fraction']:.0%} of the machine ran other work "
            "during a phase; compare ratios, not absolute numbers, or rerun on a quiet machine"
        )
    return _report_missed(metrics)


if __name__ == "__main__":
    sys.exit(main())
