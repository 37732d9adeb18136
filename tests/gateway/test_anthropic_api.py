"""The Anthropic-compatible Messages API, driven by the official SDK over real HTTP."""

from __future__ import annotations

import anthropic
import pytest

from costwarden.records import Status
from tests.gateway.conftest import RunningGateway
from tests.gateway.test_openai_api import catalog_cost

UPSTREAM_MODEL = "claude-sonnet-4-20250514"


def client(gw: RunningGateway) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key=gw.key, max_retries=0)


async def test_messages_priced_with_cache_reads_and_writes(gateway: RunningGateway) -> None:
    text = "You are a careful accountant. " * 400  # long enough for the fake's prompt cache
    system = [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]
    c = client(gateway)
    records = []
    for _ in range(2):  # first call writes the cache, the second reads it
        raw = await c.messages.with_raw_response.create(
            model="claude-sonnet-4",
            max_tokens=64,
            system=system,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": "What did we spend?"}],
        )
        records.append(await gateway.record(raw.headers["x-request-id"]))
    message = await raw.parse()
    write, record = records
    assert write.usage.cache_write_tokens > 0
    assert write.cost == catalog_cost(UPSTREAM_MODEL, write.usage, provider="anthropic")
    assert record.status is Status.OK and record.api == "messages"
    reported = message.usage
    # The ledger uses the genai-prices convention: input includes cache reads and writes.
    assert record.usage.input_tokens == (
        reported.input_tokens
        + (reported.cache_read_input_tokens or 0)
        + (reported.cache_creation_input_tokens or 0)
    )
    assert record.usage.cache_read_tokens == (reported.cache_read_input_tokens or 0)
    assert record.usage.cache_read_tokens > 0
    assert record.cost == catalog_cost(UPSTREAM_MODEL, record.usage, provider="anthropic")
    assert record.upstream_model == UPSTREAM_MODEL


async def test_messages_stream(gateway: RunningGateway) -> None:
    async with client(gateway).messages.stream(
        model="claude-sonnet-4",
        max_tokens=32,
        messages=[{"role": "user", "content": "Stream a haiku about invoices."}],
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    assert text
    record = await gateway.record(request_id)
    assert record.status is Status.OK and record.stream
    assert record.usage.output_tokens == final.usage.output_tokens
    assert not record.usage.estimated
    assert record.cost == catalog_cost(UPSTREAM_MODEL, record.usage, provider="anthropic")


async def test_messages_errors_are_anthropic_shaped(gateway: RunningGateway) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await client(gateway).messages.create(
            model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    body = info.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
