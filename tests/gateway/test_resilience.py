"""Retries, fallbacks, replicas, cut streams and disconnects — each try priced and recorded."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import aiohttp
import openai
import pytest

from costwarden.providers.fake_upstream import FakeUpstream
from costwarden.records import Status
from tests.gateway.conftest import RunningGateway, StartGateway, base_settings, free_port, model
from tests.gateway.test_openai_api import catalog_cost, client

MESSAGES = [{"role": "user", "content": "Tell me about resilience."}]


async def test_dead_replica_is_routed_around(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens here
    live = f"{upstream.base_url}/v1"
    replicas = {
        "name": "llama-3-70b",
        "endpoints": [
            {"id": "spot-a", "api_base": dead},
            {"id": "spot-b", "api_base": live},
        ],
        "pricing": {
            "mode": "self_hosted",
            "self_hosted": {
                "gpu_hourly_usd": "2.50",
                "gpus": 2,
                "throughput_tokens_per_s": 1500,
                "utilisation": "0.6",
            },
        },
    }
    gw = await start_gateway(base_settings(tmp_path, [replicas], health={"failures_to_eject": 2}))
    c = client(gw)
    ids = []
    for _ in range(10):
        raw = await c.chat.completions.with_raw_response.create(
            model="llama-3-70b", messages=MESSAGES
        )
        ids.append(raw.headers["x-request-id"])
    records = [await gw.record(i) for i in ids]
    assert all(r.status is Status.OK for r in records)
    retried = [r for r in records if len(r.attempts) > 1]
    assert retried, "some requests must have tried the dead replica first"
    assert all(r.attempts[0].endpoint == "spot-a" and r.attempts[0].error for r in retried)
    # After ejection the dead replica is skipped: far fewer than 10 failed tries.
    assert sum(len(r.attempts) - 1 for r in records) <= 2
    assert all(r.cost is not None and r.cost > 0 for r in records)
    assert records[0].price_source == "self-hosted"


async def test_fallback_model_serves_when_primary_fails(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    base = f"{upstream.base_url}/v1"
    dead = f"http://127.0.0.1:{free_port()}/v1"
    models = [
        model("gpt-4o", dead, fallbacks=["gpt-4o-mini"]),
        model("gpt-4o-mini", base),
    ]
    gw = await start_gateway(
        base_settings(tmp_path, models, retry={"max_attempts": 3, "backoff_base_s": 0.001})
    )
    raw = await client(gw).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES
    )
    record = await gw.record(raw.headers["x-request-id"])
    assert record.status is Status.OK
    assert record.requested_model == "gpt-4o" and record.resolved_model == "gpt-4o-mini"
    assert [a.model for a in record.attempts][-1] == "gpt-4o-mini"
    assert record.cost == catalog_cost("gpt-4o-mini", record.usage)


async def test_all_upstreams_down_is_502_and_recorded(
    tmp_path: Path, start_gateway: StartGateway
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    gw = await start_gateway(base_settings(tmp_path, [model("gpt-4o-mini", dead)]))
    with pytest.raises(openai.APIStatusError) as info:
        await client(gw).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.status_code == 502
    record = await gw.record(info.value.response.headers["x-request-id"])
    assert record.status is Status.UNAVAILABLE and len(record.attempts) == 3


async def test_cut_stream_is_billed_for_what_was_generated(gateway: RunningGateway) -> None:
    stream = await client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        max_tokens=200,
        stream=True,
        extra_body={"x_fake": {"cut_after": 5}},
    )
    received = ""
    with pytest.raises(openai.APIError):
        async for chunk in stream.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                received += chunk.choices[0].delta.content
    assert received
    record = await gateway.record(stream.headers["x-request-id"])
    assert record.status is Status.STREAM_CUT
    assert record.usage.estimated and record.usage.output_tokens > 0
    assert record.cost == catalog_cost("gpt-4o-mini", record.usage)


async def test_client_disconnect_mid_stream_is_billed(gateway: RunningGateway) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "max_tokens": 400,
        "stream": True,
        "x_fake": {"chunk_delay_ms": 20},
    }
    headers = {"authorization": f"Bearer {gateway.key}"}
    async with aiohttp.ClientSession() as session:
        resp = await session.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers)
        request_id = resp.headers["x-request-id"]
        content_chunks = 0
        while content_chunks < 5:  # read a few tokens, then walk away
            line = await resp.content.readline()
            content_chunks += b'"content"' in line
    for _ in range(200):
        await gateway.services.ledger.flush()
        record = await gateway.services.ledger.store.get_record(request_id)
        if record is not None and record.status is not Status.IN_FLIGHT:
            break
        await asyncio.sleep(0.02)
    assert record is not None
    assert record.status is Status.CLIENT_DISCONNECT
    assert 0 < record.usage.output_tokens < 400
    assert record.cost is not None and record.cost > Decimal(0)


async def test_unknown_price_is_rejected_or_recorded_per_config(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    base = f"{upstream.base_url}/v1"
    models = [model("my-finetune-xyz", base)]
    strict = await start_gateway(base_settings(tmp_path / "a", models))
    with pytest.raises(openai.BadRequestError, match="no price"):
        await client(strict).chat.completions.create(model="my-finetune-xyz", messages=MESSAGES)

    lenient = await start_gateway(
        base_settings(tmp_path / "b", models, unknown_model_pricing="record_unknown")
    )
    raw = await client(lenient).chat.completions.with_raw_response.create(
        model="my-finetune-xyz", messages=MESSAGES
    )
    assert "x-costwarden-cost" not in raw.headers
    record = await lenient.record(raw.headers["x-request-id"])
    assert record.status is Status.OK and record.cost is None  # unknown, never a silent $0
    assert record.usage.output_tokens > 0


async def test_custom_and_discounted_prices(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    base = f"{upstream.base_url}/v1"
    models = [
        model(
            "house-model",
            base,
            pricing={
                "mode": "custom",
                "custom": [{"input_per_mtok": "1.00", "output_per_mtok": "3.00"}],
            },
        ),
        model("gpt-4o", base, pricing={"discount_pct": "20"}),
    ]
    gw = await start_gateway(base_settings(tmp_path, models))
    c = client(gw)
    raw = await c.chat.completions.with_raw_response.create(model="house-model", messages=MESSAGES)
    r = await gw.record(raw.headers["x-request-id"])
    expected = (
        Decimal(r.usage.input_tokens) * Decimal("1.00")
        + Decimal(r.usage.output_tokens) * Decimal("3.00")
    ) / Decimal(1_000_000)
    assert r.cost == expected
    raw = await c.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    r = await gw.record(raw.headers["x-request-id"])
    assert r.cost == catalog_cost("gpt-4o", r.usage) * Decimal("0.8")
