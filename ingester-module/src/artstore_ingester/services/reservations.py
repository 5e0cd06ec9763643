"""Saga reservations: upload sagas started ahead of the uploads that will use them.

An upload without an Idempotency-Key takes a saga already `started` for the element it chose, instead
of waiting for the admin to start one: one round trip less on the path the client waits on. DESIGN
section 4's order stands, since the saga names its file id and element before any byte goes there.

The ingester keeps per element as many reservations as uploads run at once (at most `limit`), each
for `max_age` seconds but never longer than a quarter of the time after which the admin's recovery loop
takes an idle saga for abandoned: an upload's first heartbeat must reach the admin before that, or the
loop could undo the saga while its bytes go to the element. One left unused that long is released:
reported failed, so the admin compensates it, with nothing to undo. Stopping releases them all; a killed
ingester leaves them to the recovery loop, like any abandoned saga. Keyed uploads still start their own:
the key must be in the saga before the upload goes on, to answer a retry with the first upload's result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator

from artstore_common.background import SHUTDOWN_GRACE_SECONDS, Detached
from artstore_common.errors import ArtStoreError
from artstore_ingester.clients.admin import AdminClient, Saga

_log = logging.getLogger("artstore.ingester.reservations")

_SWEEP_SECONDS = 1.0
RESERVED = {"reservation": True}  # the payload that tells an operator reading the saga log what this was


class SagaReservations:
    def __init__(
        self,
        admin: AdminClient,
        *,
        limit: int,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._admin = admin
        self._limit = limit
        self._max_age = max_age
        self._clock = clock
        self._pools: dict[str, deque[tuple[float, Saga]]] = {}  # (usable until, saga), oldest first
        self._starting: dict[str, int] = {}
        self._demand = 0  # uploads running now
        self._reserving = Detached()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    @contextlib.contextmanager
    def upload_running(self) -> Iterator[None]:
        """Counts the uploads running at once: how many reservations an element should have."""
        self._demand += 1
        try:
            yield
        finally:
            self._demand -= 1

    def take(self, element_id: str) -> Saga | None:
        """A started upload saga for `element_id`, if one is ready; asks for more either way."""
        if self._limit == 0 or self._closed:
            return None
        pool = self._pools.setdefault(element_id, deque())
        self._release_until(pool, self._clock(), "expired")
        taken = pool.popleft()[1] if pool else None
        self._refill(element_id)
        return taken

    def _refill(self, element_id: str) -> None:
        wanted = (
            min(self._limit, self._demand) - len(self._pools[element_id]) - self._starting.get(element_id, 0)
        )
        for _ in range(wanted):
            self._starting[element_id] = self._starting.get(element_id, 0) + 1
            self._reserving.start(self._reserve(element_id), f"saga-reserve-{element_id}")
        if wanted > 0 and self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep(), name="saga-reservation-sweep")

    async def _reserve(self, element_id: str) -> None:
        try:
            saga = await self._admin.start(
                "upload", uuid.uuid4(), storage_element_id=element_id, payload=RESERVED
            )
        except ArtStoreError as exc:
            # The upload that asked starts its own saga instead, and meets the same trouble on its own.
            _log.warning("no saga reserved for '%s': %s", element_id, exc.detail)
            return
        finally:
            self._starting[element_id] -= 1
        if self._closed or saga.abandoned_after is None:
            self._release(saga, "ingester stopping" if self._closed else "the admin names no timeout")
        else:
            keep = min(self._max_age, saga.abandoned_after / 4)
            self._pools[element_id].append((self._clock() + keep, saga))

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(self._max_age / 2, _SWEEP_SECONDS))
            now = self._clock()
            for pool in self._pools.values():
                self._release_until(pool, now, "expired")

    def _release_until(self, pool: deque[tuple[float, Saga]], until: float, why: str) -> None:
        """Release the reservations usable no later than `until`: the pool is in that order."""
        while pool and pool[0][0] <= until:
            self._release(pool.popleft()[1], why)

    def _release(self, saga: Saga, why: str) -> None:
        self._admin.report_failure_later(
            saga.id, f"reserved saga released unused ({why}); nothing was written under it"
        )

    async def close(self) -> None:
        """Release every reservation held and those still being started; the admin client's `close`
        waits for the releases to reach the admin."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for pool in self._pools.values():
            self._release_until(pool, math.inf, "ingester stopping")
        # One started meanwhile is released as it arrives (`_reserve` sees the service closed).
        await self._reserving.finish(SHUTDOWN_GRACE_SECONDS)
