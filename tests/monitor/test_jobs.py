"""The job runner: one leader runs the jobs, on schedule; a dead leader's jobs move on."""

from __future__ import annotations

from datetime import datetime

from costwarden.ledger import Store
from costwarden.monitor.jobs import JobRunner


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingJob:
    def __init__(self, name: str, interval_s: float) -> None:
        self.name = name
        self.interval_s = interval_s
        self.runs: list[datetime] = []

    async def run(self, now: datetime) -> None:
        self.runs.append(now)


class FailingJob(CountingJob):
    async def run(self, now: datetime) -> None:
        await super().run(now)
        raise RuntimeError("a job's own fault")


async def test_only_the_lease_holder_runs_jobs_and_a_dead_one_is_replaced(
    ledger_store: Store,
) -> None:
    clock = Clock()
    job_a, job_b = CountingJob("rollups", 30), CountingJob("rollups", 30)
    a = JobRunner(ledger_store, [job_a], tick_s=5, lease_ttl_s=60, holder="a", clock=clock)
    b = JobRunner(ledger_store, [job_b], tick_s=5, lease_ttl_s=60, holder="b", clock=clock)
    assert await a.tick() == ["rollups"]
    assert await b.tick() == []
    clock.now += 10
    assert await a.tick() == []  # not due yet (every 30 s), but the lease is renewed
    clock.now += 25
    assert await a.tick() == ["rollups"]
    clock.now += 61  # a stops ticking (died); its lease runs out
    assert await b.tick() == ["rollups"]
    assert await a.tick() == []  # a came back: b leads now
    assert (len(job_a.runs), len(job_b.runs)) == (2, 1)


async def test_a_failing_job_does_not_stop_the_others(ledger_store: Store) -> None:
    clock = Clock()
    failing, healthy = FailingJob("price", 10), CountingJob("anomaly", 10)
    runner = JobRunner(ledger_store, [failing, healthy], tick_s=1, lease_ttl_s=60, clock=clock)
    assert await runner.tick() == ["price", "anomaly"]
    clock.now += 10
    assert await runner.tick() == ["price", "anomaly"]
    assert len(healthy.runs) == 2
