"""Saga metrics."""

from __future__ import annotations

from prometheus_client import Counter

SAGA_OUTCOMES = Counter(
    "artstore_saga_outcomes_total",
    "Sagas that reached an end (completed, compensated, failed) or were found stale (timed_out)",
    ["type", "outcome"],
)
