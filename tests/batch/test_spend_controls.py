"""Batch items under the gateway's spend controls: a budget smaller than a batch stops it at
the cap with the rest still queued (in the gateway's own process on in-process counters, and
a standalone worker process on Redis), a rate limit paces a batch that still completes, and
a standalone worker refuses counters no gateway shares."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from costwarden.batch.backends import open_queue
from costwarden.batch.context import WorkerOptions
from costwarden.batch.models import ItemView, JobCounts, JobStatus
from costwarden.batch.openai_batch import SUBMISSION_KEY, BatchApiClient, input_line
from costwarden.batch.worker import Worker, run_worker
from costwarden.config import Settings, settings_from_dict
from costwarden.errors import ConfigError
from costwarden.gateway.app import Gateway
from costwarden.gateway.services import build_services
from costwarden.policy.config import BudgetRule
from costwarden.policy.engine import PolicyEngine
from costwarden.providers.base import CHAT
from costwarden.providers.fake_upstream import FakeUpstream, FakeUpstreamConfig
from costwarden.records import UsageRecord
from costwarden.state.redis import RedisStateBackend
from tests.batch.conftest import chat_body, worker_settings
from tests.batch.test_worker import PROMPT, ledger_records, submit, unit_price
from tests.support import procs
from tests.support.state_backends import key_prefix

__all__ = ["key_prefix"]  # the fixture: a Redis key prefix of this test's own
ITEMS = 100
CAP_ITEMS = Decimal("30.5")  # the cap, in items at the price actually paid


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    upstream = FakeUpstream(FakeUpstreamConfig(batch_delay_ms=100))
    await upstream.start()
    yield upstream
    await upstream.stop()


def with_policy(settings: Settings, policy: dict[str, Any], **state: Any) -> Settings:
    data = settings.model_dump(mode="json")
    data["policy"] = policy
    data["state"] = {**data["state"], **state}
    return settings_from_dict(data)


def budget(cap: Decimal, **scope: str) -> dict[str, Any]:
    return {"name": "batch-cap", "scope": scope, "period": "day", "limit_usd": str(cap)}


def bodies(count: int = ITEMS) -> list[dict[str, Any]]:
    return [{**chat_body(PROMPT), "max_tokens": 16} for _ in range(count)]


async def job_state(settings: Settings, job_id: str) -> tuple[str, JobCounts, list[ItemView]]:
    queue = await open_queue(settings)
    try:
        job = await queue.jobs.get(job_id)
        assert job is not None
        return job.status, await queue.jobs.counts(job_id), await queue.jobs.items(job_id)
    finally:
        await queue.close()


async def until_stalled(settings: Settings, job_id: str, quiet_s: float = 1.5) -> JobCounts:
    """The counts once nothing has finished for ``quiet_s`` with items still pending."""
    deadline = time.monotonic() + 60
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        _, counts, _ = await job_state(settings, job_id)
        if counts.finished != last:
            last, since = counts.finished, time.monotonic()
        elif counts.finished and counts.pending and time.monotonic() - since > quiet_s:
            return counts
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} never stalled: {counts}")


async def until_done(settings: Settings, job_id: str) -> JobCounts:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, counts, _ = await job_state(settings, job_id)
        if status != JobStatus.RUNNING:
            return counts
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {counts}")


def spent(records: list[UsageRecord]) -> Decimal:
    return sum((r.cost for r in records if r.status == "ok" and r.cost), Decimal(0))


def check_stopped_at_cap(
    counts: JobCounts, views: list[ItemView], records: list[UsageRecord], cap: Decimal
) -> None:
    """The batch spent up to the cap and no further; the rest waits, attempts unused."""
    assert spent(records) == counts.cost and counts.cost <= cap
    assert (counts.failed, counts.cancelled) == (0, 0)
    assert counts.done < ITEMS and counts.pending == ITEMS - counts.done
    assert all(v.attempts == 0 for v in views if v.status == "queued")  # none burned
    refused = [r for r in records if r.status == "rejected"]
    assert refused and all(r.error_type == "budget_exceeded" for r in refused)
    assert all(r.cost in (None, Decimal(0)) and not r.attempts for r in refused)
    assert {r.status for r in records} == {"ok", "rejected"}


def start_worker(config: Path, job_id: str, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "costwarden", "batch", "worker", "--config", str(config)]
    with log.open("wb") as out:
        return subprocess.Popen([*command, "--job", job_id], stdout=out, stderr=out)


@asynccontextmanager
async def gateway_process(settings: Settings) -> AsyncIterator[Gateway]:
    """The gateway app through its lifespan (which starts and stops its batch workers)."""
    gateway = Gateway(settings, await build_services(settings), environ={})
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(gateway({"type": "lifespan"}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    try:
        yield gateway
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(task, 30)


async def test_in_gateway_worker_stops_at_a_user_budget_then_resumes_when_raised(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    base = worker_settings(tmp_path, f"{fake.base_url}/v1", gateway_workers=1, budget_pause_s=0.3)
    cap = unit_price(base, batch=False) * CAP_ITEMS
    settings = with_policy(base, {"budgets": [budget(cap, user="bea")]})
    job_id = await submit(settings, bodies())
    async with gateway_process(settings) as gateway:
        counts = await until_stalled(settings, job_id)
        _, _, views = await job_state(settings, job_id)
        records = await ledger_records(settings)
        check_stopped_at_cap(counts, views, records, cap)
        assert counts.done >= 29  # the cap was used up, not left half spent
        services = gateway.services
        assert services is not None
        [status] = await services.policy.budget_status({"user": "bea"})
        assert status.spent_usd == counts.cost  # the gateway's own counters saw every item
        await services.ledger.store.upsert_budget_rule(
            BudgetRule.model_validate(budget(Decimal(1), user="bea"))
        )
        await services.runtime_budgets.refresh_now()
        final = await until_done(settings, job_id)
    assert (final.done, final.failed) == (ITEMS, 0)
    assert final.cost == unit_price(base, batch=False) * ITEMS


async def test_standalone_worker_on_redis_stops_at_a_global_budget(
    tmp_path: Path, fake: FakeUpstream, redis_url: str, key_prefix: str
) -> None:
    base = worker_settings(tmp_path, f"{fake.base_url}/v1", budget_pause_s=0.3)
    cap = unit_price(base, batch=False) * CAP_ITEMS
    settings = with_policy(
        base,
        {"budgets": [budget(cap)]},
        backend="redis",
        redis_url=redis_url,
        key_prefix=key_prefix,
    )
    config = procs.write_config(tmp_path / "config.yaml", settings.model_dump(mode="json"))
    job_id = await submit(settings, bodies())
    worker = start_worker(config, job_id, tmp_path / "worker.log")
    try:
        counts = await until_stalled(settings, job_id)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    _, counts, views = await job_state(settings, job_id)
    records = await ledger_records(settings)
    check_stopped_at_cap(counts, views, records, cap)
    assert counts.done >= 29
    state = RedisStateBackend.from_url(redis_url, key_prefix)
    try:  # what a gateway on the same Redis sees: the worker's spend, exactly
        [status] = await PolicyEngine(settings.policy, state).budget_status()
    finally:
        await state.aclose()
    assert status.spent_usd == counts.cost and status.reserved_usd == 0
    assert "paused" in (tmp_path / "worker.log").read_text()


async def test_batch_api_group_is_reserved_at_the_batch_price(
    tmp_path: Path, fake: FakeUpstream, redis_url: str, key_prefix: str
) -> None:
    base = worker_settings(
        tmp_path,
        f"{fake.base_url}/v1",
        budget_pause_s=0.3,
        batch_api={"poll_interval_s": 0.05, "max_items": ITEMS},
    )
    cap = unit_price(base, batch=True) * CAP_ITEMS
    settings = with_policy(
        base,
        {"budgets": [budget(cap)]},
        backend="redis",
        redis_url=redis_url,
        key_prefix=key_prefix,
    )
    job_id = await submit(settings, bodies(), mode="batch_api")
    started: list[Worker] = []
    run = asyncio.create_task(run_worker(settings, WorkerOptions(job_id=job_id), started.append))
    try:
        await until_stalled(settings, job_id)
    finally:
        started[0].stop()
        assert await asyncio.wait_for(run, 10) == 0
    _, counts, views = await job_state(settings, job_id)
    records = await ledger_records(settings)
    check_stopped_at_cap(counts, views, records, cap)
    # Reserved at the list price (twice the batch price), half as many would have fitted.
    assert counts.done >= 29
    assert counts.cost == unit_price(settings, batch=True) * counts.done


async def test_a_rate_limit_paces_the_batch_and_it_completes(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    rpm, extra = 120, 4  # a minute's burst at once, then one item every 0.5 s
    settings = with_policy(
        worker_settings(tmp_path, f"{fake.base_url}/v1"),
        {"rate_limits": [{"scope": {"user": "*"}, "rpm": rpm}]},
    )
    job_id = await submit(settings, bodies(rpm + extra))
    options = WorkerOptions(job_id=job_id, concurrency=16, allow_local_counters=True)
    started = time.monotonic()
    assert await run_worker(settings, options) == 0
    elapsed = time.monotonic() - started
    status, counts, views = await job_state(settings, job_id)
    assert status == JobStatus.DONE and (counts.done, counts.failed) == (rpm + extra, 0)
    assert elapsed >= (extra - 1) * 60 / rpm  # paced by the limit, not refused
    assert all(v.attempts == 1 for v in views)  # waiting used no attempt
    records = await ledger_records(settings)
    assert {r.status for r in records} == {"ok"}  # a wait is not a refused request


async def test_standalone_worker_refuses_counters_no_gateway_shares(tmp_path: Path) -> None:
    settings = with_policy(
        worker_settings(tmp_path, "http://127.0.0.1:9/v1"),
        {"budgets": [budget(Decimal(1))]},
    )
    with pytest.raises(ConfigError, match="allow-local-counters"):
        await run_worker(settings, WorkerOptions(exit_when_idle=True))


async def test_a_taken_over_provider_batch_is_charged_even_past_the_cap(
    tmp_path: Path, fake: FakeUpstream, redis_url: str, key_prefix: str
) -> None:
    base = worker_settings(
        tmp_path, f"{fake.base_url}/v1", lease_s=1, heartbeat_s=0.2,
        batch_api={"poll_interval_s": 0.05},
    )  # fmt: skip
    cap = unit_price(base, batch=True) * 5
    settings = with_policy(
        base, {"budgets": [budget(cap)]}, backend="redis", redis_url=redis_url,
        key_prefix=key_prefix,
    )  # fmt: skip
    job_id = await submit(settings, bodies(10), mode="batch_api")
    # A worker sent the provider batch and died before its reservations were settled: the
    # batch runs on, and twice what the cap allows is spent whatever the next worker does.
    queue = await open_queue(settings)
    try:
        sub = await queue.submissions.claim("doomed", 100, settings.batch.lease_s)
        assert sub is not None and len(sub.items) == 10
        async with aiohttp.ClientSession() as session:
            client = BatchApiClient(session, settings.models[0].endpoints[0], None)
            lines = b"".join(input_line(i.item_id, CHAT, i.body) for i in sub.items)
            file_id = await client.upload(lines, "in.jsonl")
            await client.create(file_id, CHAT, {SUBMISSION_KEY: sub.submission_id}, "24h")
    finally:
        await queue.close()
    await asyncio.sleep(settings.batch.lease_s + 0.1)  # its lease runs out

    assert await run_worker(settings, WorkerOptions(job_id=job_id)) == 0
    records = await ledger_records(settings)
    spent = sum((r.cost for r in records if r.cost is not None), Decimal(0))
    assert spent == unit_price(settings, batch=True) * 10 > cap  # sent, so paid
    state = RedisStateBackend.from_url(redis_url, key_prefix)
    try:  # the counters know it all: the next admission sees the cap passed
        [status] = await PolicyEngine(settings.policy, state).budget_status()
    finally:
        await state.aclose()
    # Counters hold units of 1e-8 USD, each settlement rounded up (never under the spend).
    assert spent <= status.spent_usd <= spent + Decimal("1e-8") * len(records)
    assert status.reserved_usd == 0
