"""The recovery loop: sagas nobody finished (an ingester crashed, an element was down) are compensated.

Several admins may run it at once: each claims rows with FOR UPDATE SKIP LOCKED and leases them by
touching updated_at, and every compensation step is idempotent, so a row handled twice ends the same.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from artstore_admin.sagas import store
from artstore_admin.sagas.metrics import SAGA_OUTCOMES
from artstore_admin.sagas.service import SagaService
from artstore_common.errors import Conflict

_log = logging.getLogger("artstore.admin.sagas")
_BATCH = 50
RECOVERY_ACTOR = "admin:saga-recovery"


class SagaRecovery:
    def __init__(
        self,
        engine: AsyncEngine,
        sagas: SagaService,
        *,
        timeout_seconds: float,
        interval_seconds: float,
        element_timeout_seconds: float,
    ) -> None:
        self._engine = engine
        self._sagas = sagas
        self._timeout = timedelta(seconds=timeout_seconds)
        self._interval = interval_seconds
        # A retry of an unreachable element waits at least two call timeouts, so an admin still waiting
        # on its own call is not joined by another admin for the same saga.
        self._retry = timedelta(seconds=max(interval_seconds, 2 * element_timeout_seconds))

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                _log.exception("saga recovery pass failed; retrying next interval")
            await asyncio.sleep(self._interval)

    async def run_once(self) -> int:
        """Compensate one batch of stale sagas; returns how many were claimed."""
        async with self._engine.begin() as connection:
            claimed = await store.claim_stale(
                connection, started_before=self._timeout, retry_after=self._retry, batch=_BATCH
            )
        for saga_id in claimed:
            try:
                saga = await self._sagas.get(saga_id)
                if saga["status"] == "started":
                    SAGA_OUTCOMES.labels(saga["type"], "timed_out").inc()
                    _log.warning("saga %s not completed in time; compensating", saga_id)
                reason = f"not completed within {self._timeout.total_seconds():g} s; compensated by recovery"
                await self._sagas.compensate(saga_id, reason=reason, step="timed_out", by=RECOVERY_ACTOR)
            except Conflict as exc:
                # Completed between the claim and now: the ingester was slow, not gone.
                _log.info("saga %s: nothing to recover: %s", saga_id, exc.detail)
            except Exception:
                _log.exception("saga %s: recovery failed; retrying later", saga_id)
        return len(claimed)
