"""Results as one JSON document per run plus a short table for the terminal."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import psutil

Log = Callable[[str], None]  # where a benchmark writes its progress lines


@dataclass(frozen=True)
class Goal:
    """`kind` ratio: value / baseline must reach `minimum`; `kind` absolute: the value itself must."""

    kind: Literal["ratio", "absolute"]
    minimum: float
    text: str


@dataclass
class Metric:
    name: str
    title: str
    unit: str
    value: float
    baseline_name: str
    baseline: float
    goal: Goal
    samples: list[float] = field(default_factory=list)
    baseline_samples: list[float] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else 0.0

    @property
    def met(self) -> bool:
        measured = self.ratio if self.goal.kind == "ratio" else self.value
        return measured >= self.goal.minimum

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "unit": self.unit,
            "value": round(self.value, 2),
            "samples": [round(s, 2) for s in self.samples],
            "baseline": {
                "name": self.baseline_name,
                "value": round(self.baseline, 2),
                "samples": [round(s, 2) for s in self.baseline_samples],
            },
            "ratio": round(self.ratio, 3),
            "target": asdict(self.goal),
            "met": self.met,
            "details": self.details,
        }


def machine_info(workdir: Path) -> dict[str, Any]:
    partition = _partition_of(workdir)
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_bytes": psutil.virtual_memory().total,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "workdir": str(workdir),
        "filesystem": {
            "device": partition.device if partition else None,
            "mountpoint": partition.mountpoint if partition else None,
            "type": partition.fstype if partition else None,
            "options": partition.opts if partition else None,
        },
    }


def _partition_of(path: Path) -> Any:
    resolved = str(path.resolve())
    candidates = [p for p in psutil.disk_partitions(all=True) if resolved.startswith(p.mountpoint)]
    return max(candidates, key=lambda p: len(p.mountpoint), default=None)


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or None


def write_results(
    document: dict[str, Any], results_dir: Path, started: datetime, suite: str = "storage"
) -> tuple[Path, Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2) + "\n"
    stamped = results_dir / f"{suite}-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    latest = results_dir / f"latest-{suite}.json"
    stamped.write_text(text)
    latest.write_text(text)
    return stamped, latest


def table(metrics: list[Metric], measured: str = "storage element") -> str:
    header = ("metric", measured, "baseline", "ratio", "target", "met")
    rows = [header] + [
        (
            m.title,
            f"{m.value:,.1f} {m.unit}",
            f"{m.baseline:,.1f} {m.unit}",
            f"{m.ratio:.2f}",
            m.goal.text,
            "yes" if m.met else "NO",
        )
        for m in metrics
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
