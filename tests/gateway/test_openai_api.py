"""The OpenAI-compatible APIs, driven by the official SDK over real HTTP."""

from __future__ import annotations

from decimal import Decimal

import openai
from genai_prices import Usage, calc_price

from costwarden.records import Status, TokenUsage
from tests.gateway.conftest import RunningGateway


def catalog_cost(model: str, usage: TokenUsage, provider: str = "openai") -> Decimal:
    price = calc_price(
        Usage(
            input_tokens=usage.input_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_tokens=usage.output_tokens,
        ),
        model_ref=model,
        provider_id=provider,
    )
    return Decimal(price.total_price)


def client(gw: RunningGateway, key: str | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=key or gw.key, max_retries=0)


async def test_chat_completion_is_priced_exactly_and_recorded(gateway: RunningGateway) -> None:
    raw = await client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Say hello to the ledger, please."}],
        max_tokens=40,
        extra_headers={"x-costwarden-feature": "greeter", "x-costwarden-env": "prod"},
    )
    completion = raw.parse()
    request_id = raw.headers["x-request-id"]
    record = await gateway.record(request_id)
    assert record is not None
    assert record.status is Status.OK
    assert record.principal.user == "alice" and record.principal.team == "research"
    assert record.tags.feature == "greeter" and record.tags.env == "prod"
    assert completion.usage is not None
    assert record.usage.input_tokens == completion.usage.prompt_tokens
    assert record.usage.output_tokens == completion.usage.completion_tokens
    assert not record.usage.estimated
    expected = catalog_cost("gpt-4o-mini", record.usage)
    assert record.cost == expected
    assert Decimal(raw.headers["x-costwarden-cost"]) == expected
    assert record.cost < Decimal("0.01")  # sub-cent, stored exactly
    assert record.price_source and record.price_version
    assert record.requested_model == "gpt-4o-mini"
    assert record.reported_model == completion.model
    assert len(record.attempts) == 1


async def test_stream_takes_usage_from_the_usage_chunk(gateway: RunningGateway) -> None:
    raw = await client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Stream me a short story about budgets."}],
        max_tokens=30,
        stream=True,
    )
    stream = raw.parse()
    text = ""
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    assert text
    record = await gateway.record(raw.headers["x-request-id"])
    assert record.status is Status.OK and record.stream
    assert not record.usage.estimated
    assert record.usage.output_tokens > 0
    assert record.cost == catalog_cost("gpt-4o", record.usage)
    sent = gateway_upstream_bodies(gateway)
    assert sent[-1]["stream_options"]["include_usage"] is True


def gateway_upstream_bodies(gw: RunningGateway) -> list[dict[str, object]]:
    assert gw.upstream is not None
    return [r.body for r in gw.upstream.requests]


async def test_reasoning_and_cached_tokens_are_priced(gateway: RunningGateway) -> None:
    long_prompt = "budget " * 1500
    for _ in range(2):  # the second call hits the fake upstream's prompt cache
        raw = await client(gateway).chat.completions.with_raw_response.create(
            model="o3-mini", messages=[{"role": "user", "content": long_prompt}], max_tokens=50
        )
    record = await gateway.record(raw.headers["x-request-id"])
    assert record.usage.reasoning_tokens > 0
    assert record.usage.cache_read_tokens > 0
    assert record.cost == catalog_cost("o3-mini", record.usage)


async def test_completions_and_embeddings(gateway: RunningGateway) -> None:
    c = client(gateway)
    raw = await c.completions.with_raw_response.create(
        model="gpt-3.5-turbo-instruct", prompt="Once upon a time", max_tokens=10
    )
    record = await gateway.record(raw.headers["x-request-id"])
    assert record.api == "completions" and record.status is Status.OK
    assert record.cost == catalog_cost("gpt-3.5-turbo-instruct", record.usage)

    raw_e = await c.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["first text", "second text"]
    )
    assert len(raw_e.parse().data) == 2
    record = await gateway.record(raw_e.headers["x-request-id"])
    assert record.api == "embeddings" and record.usage.output_tokens == 0
    assert record.cost == catalog_cost("text-embedding-3-small", record.usage)


async def test_models_lists_configured_models(gateway: RunningGateway) -> None:
    models = await client(gateway).models.list()
    ids = {m.id for m in models.data}
    assert {"gpt-4o-mini", "claude-sonnet-4", "text-embedding-3-small"} <= ids
