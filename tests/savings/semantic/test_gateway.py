"""The semantic cache through the gateway: a paraphrase is answered from the cache (streamed
too), a question that differs in a number is not, and the hit is on record with its saving."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import openai

from costwarden.providers.fake_upstream import FakeUpstream
from tests.savings.conftest import RunningGateway, StartGateway, model, savings_settings


async def _gateway(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> RunningGateway:
    models = [model("gpt-4o-mini", f"{upstream.base_url}/v1")]
    savings = {"semantic_cache": {"enabled": True}}
    gw = await start_gateway(savings_settings(tmp_path, models, savings))
    gw.upstream = upstream
    return gw


def _chat_calls(upstream: FakeUpstream) -> int:
    return len([r for r in upstream.requests if r.path.endswith("/chat/completions")])


async def _ask(client: openai.AsyncOpenAI, question: str) -> Any:
    return await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "You are the help desk of an online shop."},
            {"role": "user", "content": question},
        ],
    )


async def test_a_paraphrase_is_served_from_the_semantic_cache(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    client = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=gw.key, max_retries=0)
    first = await _ask(client, "How do I reset my password?")
    hit = await _ask(client, "How can I reset my password?")
    assert _chat_calls(upstream) == 1
    assert hit.headers["x-costwarden-cache"] == "hit-semantic"
    assert hit.parse().choices[0].message.content == first.parse().choices[0].message.content
    original = await gw.record(first.headers["x-request-id"])
    served = await gw.record(hit.headers["x-request-id"])
    assert served.attempts == [] and served.cost == Decimal(0)
    [saving] = served.savings
    assert saving.kind == "cache_semantic" and saving.cost_saved == original.cost
    assert saving.tokens_saved == original.usage.total_tokens

    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "You are the help desk of an online shop."},
            {"role": "user", "content": "How do I reset my password, please?"},
        ],
        stream=True,
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == first.parse().choices[0].message.content
    assert _chat_calls(upstream) == 1


async def test_a_different_number_or_system_prompt_is_not_a_hit(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    client = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=gw.key, max_retries=0)
    await _ask(client, "Can I return an order after 14 days?")
    other = await _ask(client, "Can I return an order after 30 days?")
    assert "x-costwarden-cache" not in other.headers
    changed = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "You are a pirate."},
            {"role": "user", "content": "Can I return an order after 14 days?"},
        ],
    )
    assert "x-costwarden-cache" not in changed.headers
    assert _chat_calls(upstream) == 3
