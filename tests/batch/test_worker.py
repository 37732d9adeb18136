"""A worker in front of the fake upstream: direct lane, Batch API lane, retries, SIGTERM drain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from costwarden.batch.backends import BatchQueue, open_queue
from costwarden.batch.context import WorkerOptions
from costwarden.batch.models import ItemStatus, JobSpec, JobStatus, NewItem
from costwarden.batch.pricing import BatchPricer
from costwarden.batch.submit import output_lines
from costwarden.batch.worker import Worker, run_worker
from costwarden.config import Settings
from costwarden.ledger import Ledger
from costwarden.pricing import PriceBook
from costwarden.providers.fake_upstream import FakeUpstream, FakeUpstreamConfig
from costwarden.records import Principal, Tags, TokenUsage, UsageRecord, utcnow
from tests.batch.conftest import MODEL, chat_body, worker_settings

PROMPT = "Say something short"
PROMPT_TOKENS = len(PROMPT.split()) + 3 + 3  # the fake's count: words + 3/message + 3
OUTPUT_TOKENS = 16  # the fake's default answer length


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    upstream = FakeUpstream(FakeUpstreamConfig(batch_delay_ms=300))
    await upstream.start()
    yield upstream
    await upstream.stop()


async def submit(settings: Settings, bodies: list[dict[str, object]], **spec: object) -> str:
    queue = await open_queue(settings)
    try:
        fields: dict[str, object] = {
            "model": MODEL,
            "api": "chat.completions",
            "mode": "direct",
            "failure_budget": 0.05,
            "max_attempts": 3,
            "principal": Principal("key-b", "bea", "ml"),
            "tags": Tags(feature="nightly"),
            **spec,
        }
        job = await queue.jobs.create(JobSpec(**fields))  # type: ignore[arg-type]
        items = [NewItem(f"c-{n}", body) for n, body in enumerate(bodies)]
        await queue.jobs.add_items(job.job_id, items)
        return job.job_id
    finally:
        await queue.close()


async def ledger_records(settings: Settings) -> list[UsageRecord]:
    ledger = await Ledger.open(settings.ledger)
    try:
        await ledger.flush()
        return await ledger.store.list_records(None, None, None, 100_000)
    finally:
        await ledger.close()


async def finished(settings: Settings, job_id: str) -> tuple[BatchQueue, object]:
    queue = await open_queue(settings)
    return queue, await queue.jobs.get(job_id)


def unit_price(settings: Settings, *, batch: bool) -> Decimal:
    model = settings.model(MODEL)
    assert model is not None
    pricer = BatchPricer(PriceBook(settings), settings.batch.batch_api)
    price = (pricer.batch_api if batch else pricer.direct)(model, model.endpoints[0], utcnow())
    assert price is not None
    return price.cost(TokenUsage(input_tokens=PROMPT_TOKENS, output_tokens=OUTPUT_TOKENS)).total


async def test_direct_lane_sends_every_item_once_and_prices_it(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    settings = worker_settings(tmp_path, f"{fake.base_url}/v1")
    bodies = [chat_body(PROMPT) for _ in range(40)]
    bodies[7] = chat_body(PROMPT, status=400)  # the request's own fault: failed at once
    bodies[9] = chat_body(PROMPT, status=503)  # always overloaded: retried, then failed
    job_id = await submit(settings, bodies, failure_budget=0.05)
    assert await run_worker(settings, WorkerOptions(job_id=job_id, concurrency=8)) == 0

    queue = await open_queue(settings)
    try:
        job = await queue.jobs.get(job_id)
        counts = await queue.jobs.counts(job_id)
        views = await queue.jobs.items(job_id)
    finally:
        await queue.close()
    assert job is not None and job.status == JobStatus.DONE
    assert (counts.done, counts.failed) == (38, 2)
    assert views[7].attempts == 1 and views[9].attempts == 3
    price = unit_price(settings, batch=False)
    assert counts.cost == price * 38

    records = await ledger_records(settings)
    ok = [r for r in records if r.status == "ok"]
    assert len(ok) == 38 and len({r.request_id for r in ok}) == 38
    assert {r.request_id for r in ok} == {v.request_id for v in views if v.status == "done"}
    assert all(r.cost == price and r.price_source == "genai-prices" for r in ok)
    assert all(r.principal is not None and r.principal.user == "bea" for r in ok)
    assert all(r.tags.feature == "nightly" and r.tags.session == job_id for r in ok)
    errors = [r for r in records if r.status == "upstream_error"]
    assert len(errors) == 1 + 3  # one record per try that reached the upstream
    assert not [r for r in records if r.status not in ("ok", "upstream_error")]

    lines = [orjson.loads(line) for line in output_lines(views)]
    assert [line["custom_id"] for line in lines] == [f"c-{n}" for n in range(40)]
    assert lines[0]["response"]["status_code"] == 200
    assert lines[0]["response"]["body"]["object"] == "chat.completion"
    assert lines[7]["response"] is None and lines[7]["error"]["code"] == "upstream_error"


async def test_batch_api_lane_is_priced_at_the_batch_rate(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    settings = worker_settings(
        tmp_path, f"{fake.base_url}/v1", batch_api={"poll_interval_s": 0.1, "max_items": 30}
    )
    bodies = [chat_body(PROMPT) for _ in range(70)]
    bodies[3] = chat_body(PROMPT, status=400)
    job_id = await submit(settings, bodies, mode="batch_api", failure_budget=0.02)
    assert await run_worker(settings, WorkerOptions(job_id=job_id)) == 0

    assert fake.batches.created == 3  # 70 items, 30 per provider batch
    uploads = [r for r in fake.requests if r.path.endswith("/files")]
    assert len(uploads) == 3 and b'"purpose"' in uploads[0].raw_body
    queue = await open_queue(settings)
    try:
        job = await queue.jobs.get(job_id)
        counts = await queue.jobs.counts(job_id)
    finally:
        await queue.close()
    assert job is not None and job.status == JobStatus.DONE
    assert (counts.done, counts.failed) == (69, 1)
    batch_price = unit_price(settings, batch=True)
    assert batch_price == unit_price(settings, batch=False) / 2  # OpenAI: half price
    assert counts.cost == batch_price * 69
    records = await ledger_records(settings)
    ok = [r for r in records if r.status == "ok"]
    assert len(ok) == 69 and all(r.cost == batch_price for r in ok)
    assert all(r.price_source == "genai-prices:batch" for r in ok)
    assert all(r.attempts[0].upstream_request_id for r in ok)
    assert len([r for r in records if r.status == "upstream_error"]) == 1


async def test_sigterm_drains_in_flight_items_and_exits(tmp_path: Path, fake: FakeUpstream) -> None:
    settings = worker_settings(tmp_path, f"{fake.base_url}/v1")
    slow = [chat_body(PROMPT, latency_ms=2000) for _ in range(4)]
    job_id = await submit(settings, slow + [chat_body(PROMPT) for _ in range(20)])
    started: list[Worker] = []
    ready = asyncio.Event()

    def on_start(worker: Worker) -> None:
        started.append(worker)
        ready.set()

    options = WorkerOptions(job_id=job_id, concurrency=4, notice_s=0.3)
    run = asyncio.create_task(run_worker(settings, options, on_start=on_start))
    await ready.wait()
    await asyncio.sleep(0.3)  # the four slow items are in flight
    started[0].stop()
    assert await asyncio.wait_for(run, 10) == 0

    queue = await open_queue(settings)
    try:
        views = await queue.jobs.items(job_id)
        again = await queue.items.claim("next", 4, 30, mode="direct", job_id=job_id)
    finally:
        await queue.close()
    assert [v.status for v in views[:4]] == [ItemStatus.QUEUED] * 4  # released, not leased
    assert {i.item_id for i in again} == {v.item_id for v in views[:4]}  # at once
    records = await ledger_records(settings)
    interrupted = [r for r in records if r.status == "interrupted"]
    assert len(interrupted) == 4 and all(r.cost is None for r in interrupted)
