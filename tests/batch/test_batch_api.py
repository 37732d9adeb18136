"""The fake's Files and Batch APIs speak OpenAI's wire format (checked with the real SDK), and
a worker that dies after creating a provider batch is resumed without paying twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import openai
import orjson
import pytest

from costwarden.batch.backends import open_queue
from costwarden.batch.context import WorkerOptions
from costwarden.batch.openai_batch import SUBMISSION_KEY, BatchApiClient, input_line
from costwarden.batch.worker import run_worker
from costwarden.providers.base import CHAT
from costwarden.providers.fake_upstream import FakeUpstream, FakeUpstreamConfig
from tests.batch.conftest import chat_body, worker_settings
from tests.batch.test_worker import PROMPT, ledger_records, submit, unit_price


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    upstream = FakeUpstream(FakeUpstreamConfig(batch_delay_ms=200))
    await upstream.start()
    yield upstream
    await upstream.stop()


async def test_openai_sdk_round_trip(fake: FakeUpstream) -> None:
    client = openai.AsyncOpenAI(base_url=f"{fake.base_url}/v1", api_key="sk-test")
    content = input_line("ok-1", CHAT, chat_body(PROMPT)) + input_line(
        "bad-1", CHAT, chat_body(PROMPT, status=500)
    )
    uploaded = await client.files.create(file=("in.jsonl", content), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes == len(content)
    batch = await client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"run": "sdk"},
    )
    assert batch.status == "in_progress" and batch.request_counts.total == 2  # type: ignore[union-attr]
    while batch.status != "completed":
        await asyncio.sleep(0.05)
        batch = await client.batches.retrieve(batch.id)
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 1)
    assert batch.output_file_id and batch.error_file_id
    [out] = (await client.files.content(batch.output_file_id)).content.splitlines()
    [err] = (await client.files.content(batch.error_file_id)).content.splitlines()
    line, failed = orjson.loads(out), orjson.loads(err)
    assert set(line) == {"id", "custom_id", "response", "error"}
    assert line["id"].startswith("batch_req_") and line["custom_id"] == "ok-1"
    assert line["error"] is None and line["response"]["request_id"].startswith("req_")
    assert line["response"]["status_code"] == 200
    assert line["response"]["body"]["usage"]["completion_tokens"] == 16
    assert failed["custom_id"] == "bad-1" and failed["response"]["status_code"] == 500
    assert failed["response"]["body"]["error"]["type"] == "server_error"
    listed = await client.batches.list(limit=5)
    assert [b.id for b in listed.data] == [batch.id]
    await client.close()


async def test_fake_fails_a_batch_with_a_bad_line(fake: FakeUpstream) -> None:
    client = openai.AsyncOpenAI(base_url=f"{fake.base_url}/v1", api_key="sk-test")
    content = input_line("a", CHAT, chat_body()) + input_line("a", CHAT, chat_body())
    uploaded = await client.files.create(file=("in.jsonl", content), purpose="batch")
    batch = await client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "failed"
    assert batch.errors is not None and batch.errors.data is not None
    assert batch.errors.data[0].line == 2
    await client.close()


async def test_a_dead_workers_provider_batch_is_resumed_not_resent(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    settings = worker_settings(
        tmp_path,
        f"{fake.base_url}/v1",
        lease_s=1,
        heartbeat_s=0.2,
        batch_api={"poll_interval_s": 0.05},
    )
    job_id = await submit(settings, [chat_body(PROMPT) for _ in range(10)], mode="batch_api")
    # A worker claims the items, creates the provider batch and dies before storing its id.
    queue = await open_queue(settings)
    try:
        sub = await queue.submissions.claim("doomed", 100, settings.batch.lease_s)
        assert sub is not None and len(sub.items) == 10
        endpoint = settings.models[0].endpoints[0]
        async with aiohttp.ClientSession() as session:
            client = BatchApiClient(session, endpoint, None)
            lines = b"".join(input_line(i.item_id, CHAT, i.body) for i in sub.items)
            file_id = await client.upload(lines, "in.jsonl")
            await client.create(file_id, CHAT, {SUBMISSION_KEY: sub.submission_id}, "24h")
    finally:
        await queue.close()
    await asyncio.sleep(settings.batch.lease_s + 0.1)  # its lease runs out

    assert await run_worker(settings, WorkerOptions(job_id=job_id)) == 0
    assert fake.batches.created == 1  # found again by its metadata, not paid for twice
    records = await ledger_records(settings)
    assert len(records) == 10 and all(r.status == "ok" for r in records)
    assert all(r.cost == unit_price(settings, batch=True) for r in records)
