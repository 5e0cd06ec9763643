"""Circuit breakers per target (DESIGN section 8), built on the `circuitbreaker` package.

One breaker per storage element: after `failure_threshold` consecutive failures it opens and callers
skip that element (or fail fast with 503 and Retry-After); after `recovery_seconds` it half-opens and
the next call is the probe whose outcome closes or reopens it. Only failures of the target count:
refused connections, timeouts and 5xx answers; a 4xx is the caller's problem and proves the target alive.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from circuitbreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN, CircuitBreaker
from prometheus_client import Counter, Gauge

from artstore_common.errors import ServiceUnavailable

CIRCUIT_STATE = Gauge(
    "artstore_circuit_state",
    "Circuit breaker state per target: 0 closed, 1 half-open, 2 open",
    ["service", "target"],
)
CIRCUIT_FAILURES = Counter(
    "artstore_circuit_failures_total",
    "Calls that counted as a failure of their target",
    ["service", "target"],
)
_STATE_VALUE = {STATE_CLOSED: 0, STATE_HALF_OPEN: 1, STATE_OPEN: 2}


class TargetFailed(Exception):
    """The target itself failed (unreachable, timed out, 5xx): counted by its breaker."""


class CircuitOpen(ServiceUnavailable):
    code = "CIRCUIT_OPEN"


class CircuitBreakers:
    """The breakers of one service, one per target, created on first use."""

    def __init__(self, service: str, *, failure_threshold: int = 5, recovery_seconds: float = 60.0) -> None:
        self._service = service
        self._threshold = failure_threshold
        self._recovery = recovery_seconds
        self._breakers: dict[str, CircuitBreaker] = {}

    def _breaker(self, target: str) -> CircuitBreaker:
        breaker = self._breakers.get(target)
        if breaker is None:
            breaker = CircuitBreaker(
                failure_threshold=self._threshold,
                recovery_timeout=self._recovery,
                expected_exception=TargetFailed,
                name=f"{self._service}:{target}",
            )
            self._breakers[target] = breaker
        return breaker

    def state(self, target: str) -> str:
        """closed, half_open or open (the package's names); also refreshes the exported gauge."""
        state: str = self._breaker(target).state
        CIRCUIT_STATE.labels(self._service, target).set(_STATE_VALUE[state])
        return state

    def is_open(self, target: str) -> bool:
        return self.state(target) == str(STATE_OPEN)

    def retry_after(self, target: str) -> int:
        remaining: float = self._breaker(target).open_remaining
        return max(1, math.ceil(remaining))

    def check(self, target: str) -> None:
        """Fail fast while the circuit is open."""
        if self.is_open(target):
            raise CircuitOpen(
                f"'{target}' failed {self._threshold} times in a row; calls to it are paused "
                f"for up to {self._recovery:g} s before the next probe",
                retry_after=self.retry_after(target),
            )

    @contextmanager
    def guard(self, target: str) -> Iterator[None]:
        """Run one call to `target`: TargetFailed counts against it, anything else (or success) resets it."""
        self.check(target)
        breaker = self._breaker(target)
        try:
            with breaker:
                yield
        except TargetFailed:
            CIRCUIT_FAILURES.labels(self._service, target).inc()
            raise
        finally:
            self.state(target)

    def snapshot(self) -> dict[str, str]:
        return {target: self.state(target) for target in sorted(self._breakers)}
