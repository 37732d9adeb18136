"""The gateway's background jobs (rollups, anomaly watch, price watch) and who runs them.

Every replica runs a ``JobRunner``; only the holder of the ``monitor`` lease in the ledger
database runs jobs, so N replicas raise one alert, not N, and refresh the cube once. The lease
expires ``lease_ttl_s`` after its holder's last renewal: a dead leader's jobs move to another
replica within that. Jobs keep nothing that correctness needs in memory: a new leader rebuilds
what it needs from the ledger (the cube, the alert log).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from costwarden.config import Settings
from costwarden.distill.capture import CapturePurgeJob
from costwarden.ledger.store import Store
from costwarden.monitor.alerts import AlertRouter
from costwarden.monitor.anomaly_watch import AnomalyWatch
from costwarden.monitor.hourly_history import CubeRefresher
from costwarden.monitor.price_watch_job import PriceWatchJob

log = logging.getLogger("costwarden.monitor")

LEASE_NAME = "monitor"
_MAX_REFRESH_SHARE_INV = 10.0


class Job(Protocol):
    name: str
    interval_s: float

    async def run(self, now: datetime) -> None: ...


class RollupJob:
    """Folds newly written records into the cube (``ledger/cube.py``)."""

    name = "rollups"

    def __init__(self, refresher: CubeRefresher, interval_s: float) -> None:
        self._refresher = refresher
        self._base_interval_s = interval_s
        self.interval_s = interval_s

    async def run(self, now: datetime) -> None:
        started = time.perf_counter()
        await self._refresher.refresh()
        # Summing the hour in progress grows with traffic (measured on SQLite: ~1 s per 100k
        # records of the hour): at most a tenth of the time goes to it, the cube gets staler.
        elapsed = time.perf_counter() - started
        self.interval_s = max(self._base_interval_s, _MAX_REFRESH_SHARE_INV * elapsed)


def new_holder_id() -> str:
    """This process's name on the lease: pid plus randomness (pids repeat across hosts)."""
    return f"{os.getpid()}-{secrets.token_hex(6)}"


class JobRunner:
    """Runs each job every ``interval_s`` while this process holds the monitor lease."""

    def __init__(
        self,
        store: Store,
        jobs: Sequence[Job],
        *,
        tick_s: float,
        lease_ttl_s: float,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._jobs = tuple(jobs)
        self._tick_s = tick_s
        self._lease_ttl_s = lease_ttl_s
        self.holder = holder or new_holder_id()
        self._clock = clock
        self._next_run: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._jobs and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="costwarden-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                # A database outage must not end the loop: the next tick tries again.
                log.exception("monitor tick failed")
            await asyncio.sleep(self._tick_s)

    async def tick(self) -> list[str]:
        """One pass: take or renew the lease, then run the jobs that are due; their names."""
        now = self._clock()
        if not await self._store.try_lease(LEASE_NAME, self.holder, self._lease_ttl_s, now):
            self._next_run.clear()  # when this replica leads again, everything is due at once
            return []
        ran = []
        for job in self._jobs:
            if now < self._next_run.get(job.name, 0.0):
                continue
            await self._run(job, now)
            self._next_run[job.name] = now + job.interval_s  # read after: a job may adapt it
            ran.append(job.name)
        return ran

    async def _run(self, job: Job, now: float) -> None:
        try:
            await job.run(datetime.fromtimestamp(now, UTC))
        except Exception:
            log.exception("monitor job %s failed", job.name)


def build_monitor(
    settings: Settings,
    store: Store,
    alerts: AlertRouter | None,
    clock: Callable[[], float] = time.time,
) -> JobRunner | None:
    """The started job runner for ``settings.monitor``, or None when the monitor is off."""
    config = settings.monitor
    if not config.enabled:
        return None
    refresher = CubeRefresher(store)
    jobs: list[Job] = [RollupJob(refresher, config.rollup_interval_s)]
    if config.anomaly.enabled:
        jobs.append(AnomalyWatch(store, config.anomaly, alerts, refresher))
    if config.price_watch.enabled:
        jobs.append(PriceWatchJob(settings, store, alerts, config.price_watch))
    jobs.append(CapturePurgeJob(settings.distill.capture, settings.ledger))  # even when off
    runner = JobRunner(
        store, jobs, tick_s=config.tick_s, lease_ttl_s=config.lease_ttl_s, clock=clock
    )
    runner.start()
    return runner
