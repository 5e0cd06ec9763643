"""Where the CPU went during a phase: this client, the element, its PostgreSQL and Redis, and the rest.

Client and server share the machine's cores, so a phase that saturates them measures the pair, not the
server alone; these numbers say which side was the limit. "rest" is everything else the machine ran:
kernel I/O threads, and any other work that happened to run at the same time (which makes a run noisy).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import psutil

# Above this share of the machine spent on other work, a run's numbers say more about its neighbours.
BUSY_NEIGHBOURS = 0.15


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    # guest time is already counted in user; steal is time the hypervisor gave to someone else.
    idle = times.idle + getattr(times, "iowait", 0.0) + getattr(times, "steal", 0.0)
    return float(sum(times) - idle - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0))


def _seconds(processes: list[psutil.Process]) -> dict[int, float]:
    found: dict[int, float] = {}
    for process in processes:
        try:
            times = process.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found[process.pid] = float(times.user + times.system)
    return found


def _element(element_pid: int) -> list[psutil.Process]:
    """The element's process and its own helpers (the storage element's disk agent)."""
    element = psutil.Process(element_pid)
    return [element, *element.children(recursive=True)]


def _helpers(client: psutil.Process, element_pid: int, database: str) -> list[psutil.Process]:
    """Redis (our child) and the PostgreSQL backends serving this run's database.

    The server's shared processes (WAL writer, checkpointer) are not counted: with an external server
    they serve other databases too.
    """
    element = {p.pid for p in _element(element_pid)}
    helpers = [p for p in client.children(recursive=True) if p.pid not in element]
    title = f" {database} "
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if cmdline and title in cmdline[0]:
            helpers.append(process)
    return list({p.pid: p for p in helpers}.values())


@dataclass
class CpuUsage:
    wall_seconds: float = 0.0
    client_seconds: float = 0.0
    element_seconds: float = 0.0
    helpers_seconds: float = 0.0
    machine_busy_seconds: float = 0.0

    @property
    def rest_seconds(self) -> float:
        return max(
            self.machine_busy_seconds - self.client_seconds - self.element_seconds - self.helpers_seconds, 0
        )

    @property
    def rest_fraction(self) -> float:
        return self.rest_seconds / (max(self.wall_seconds, 1e-9) * (psutil.cpu_count() or 1))

    def as_dict(self) -> dict[str, float]:
        cores = psutil.cpu_count() or 1
        return {
            "wall_seconds": round(self.wall_seconds, 3),
            "client_cpu_seconds": round(self.client_seconds, 3),
            "element_cpu_seconds": round(self.element_seconds, 3),
            "postgres_redis_cpu_seconds": round(self.helpers_seconds, 3),
            "rest_of_machine_cpu_seconds": round(self.rest_seconds, 3),
            "machine_busy_fraction": round(
                self.machine_busy_seconds / (max(self.wall_seconds, 1e-9) * cores), 3
            ),
        }


class CpuMeter:
    """`with CpuMeter(pid, database) as meter:` then `meter.usage` holds the phase's totals."""

    def __init__(self, element_pid: int, database: str) -> None:
        self._client = psutil.Process()
        self._element_pid = element_pid
        self._database = database
        self.usage = CpuUsage()

    def _sample(self) -> tuple[float, float, dict[int, float], dict[int, float], float]:
        element = _seconds(self._element)
        helpers = _seconds(self._helpers)
        client = _seconds([self._client])[self._client.pid]
        return time.perf_counter(), client, element, helpers, _busy_seconds()

    def __enter__(self) -> CpuMeter:
        self._element = _element(self._element_pid)
        self._helpers = _helpers(self._client, self._element_pid, self._database)
        self._start = self._sample()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        wall, client, element, helpers, busy = self._sample()
        wall0, client0, element0, helpers0, busy0 = self._start
        self.usage = CpuUsage(
            wall_seconds=wall - wall0,
            client_seconds=client - client0,
            element_seconds=sum(element.values()) - sum(element0.values()),
            helpers_seconds=sum(v - helpers0.get(pid, 0.0) for pid, v in helpers.items()),
            machine_busy_seconds=busy - busy0,
        )


class CpuLedger:
    """Every phase's usage in one run, to tell afterwards whether other work disturbed it."""

    def __init__(self, element_pid: int, database: str) -> None:
        self.element_pid = element_pid
        self.database = database
        self.meters: list[CpuMeter] = []

    def measure(self) -> CpuMeter:
        meter = CpuMeter(self.element_pid, self.database)
        self.meters.append(meter)
        return meter

    @property
    def worst_rest_fraction(self) -> float:
        return max((m.usage.rest_fraction for m in self.meters), default=0.0)

    def summary(self) -> dict[str, Any]:
        worst = self.worst_rest_fraction
        return {
            "worst_rest_of_machine_fraction": round(worst, 3),
            "threshold": BUSY_NEIGHBOURS,
            "disturbed": worst > BUSY_NEIGHBOURS,
            "note": "share of all cores used by neither this run's processes nor idle; kernel I/O threads "
            "account for a few percent, more means other work ran at the same time",
        }
