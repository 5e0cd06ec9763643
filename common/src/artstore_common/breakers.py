"""Circuit breakers per target (DESIGN section 8), built on the `circuitbreaker` package.

One breaker per storage element: after `failure_threshold` consecutive failures it opens and callers
skip that element (or fail fast with 503 and Retry-After); after `recovery_seconds` it half-opens and
the next call is the probe whose outcome closes or reopens it. Only failures of the target count:
refused connections, timeouts and 5xx answers; a 4xx is the caller's problem and proves the target alive.

A target that opened its circuit by being unreachable (a crashed or restarting element) is also watched:
its `/health/ready` is asked every `probe_seconds`, and a ready answer closes the circuit at once. A
restarted element is then used again within seconds instead of after the whole recovery time, while an
element that answers with errors still waits out `recovery_seconds`, since being ready proves nothing then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from circuitbreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN, CircuitBreaker
from prometheus_client import Counter, Gauge

from artstore_common.errors import ServiceUnavailable

_log = logging.getLogger("artstore.breakers")

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

    @property
    def unreachable(self) -> bool:
        """No answer came (refused, reset, timed out): the target may be down, so a watch for its readiness
        may close the circuit. Raisers whose client is not httpx say so for their own errors."""
        return isinstance(self.__cause__, (httpx.TransportError, TimeoutError))


class CircuitOpen(ServiceUnavailable):
    code = "CIRCUIT_OPEN"


class CircuitBreakers:
    """The breakers of one service, one per target, created on first use."""

    def __init__(
        self,
        service: str,
        *,
        failure_threshold: int = 5,
        recovery_seconds: float = 60.0,
        probe_seconds: float = 0.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._service = service
        self._threshold = failure_threshold
        self._recovery = recovery_seconds
        self._probe_seconds = probe_seconds
        self._http = http
        self._breakers: dict[str, CircuitBreaker] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}

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
    def guard(self, target: str, *, ready_url: str | None = None) -> Iterator[None]:
        """Run one call to `target`: TargetFailed counts against it, anything else (or success) resets it.

        `ready_url` is where the target says it is ready again, should this call leave it unreachable
        behind an open circuit.
        """
        self.check(target)
        breaker = self._breaker(target)
        try:
            with breaker:
                yield
        except TargetFailed as failure:
            CIRCUIT_FAILURES.labels(self._service, target).inc()
            if failure.unreachable and ready_url is not None and breaker.opened:
                self._watch(target, ready_url)
            raise
        finally:
            self.state(target)

    def _watch(self, target: str, ready_url: str) -> None:
        if self._probe_seconds <= 0 or self._http is None or target in self._watchers:
            return
        watcher = asyncio.get_running_loop().create_task(
            self._close_when_ready(target, ready_url), name=f"circuit-watch-{target}"
        )
        self._watchers[target] = watcher
        watcher.add_done_callback(lambda _: self._watchers.pop(target, None))

    async def _close_when_ready(self, target: str, ready_url: str) -> None:
        assert self._http is not None
        breaker = self._breaker(target)
        # Once the circuit half-opens by itself, the next real call is the probe: watching ends.
        while breaker.state == STATE_OPEN:
            await asyncio.sleep(self._probe_seconds)
            try:
                answer = await self._http.get(ready_url, timeout=max(self._probe_seconds, 1.0))
            except httpx.HTTPError:
                continue
            if answer.status_code == 200 and breaker.state == STATE_OPEN:
                breaker.reset()
                self.state(target)
                _log.info("'%s' answers ready again: its circuit is closed", target)
                return

    async def close(self) -> None:
        watchers = list(self._watchers.values())
        for watcher in watchers:
            watcher.cancel()
        for watcher in watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    def snapshot(self) -> dict[str, str]:
        return {target: self.state(target) for target in sorted(self._breakers)}
