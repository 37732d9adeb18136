"""The exact cache through the gateway: hits with no upstream call, streamed and not, recorded
with cost 0 and the cost saved; only deterministic or opted-in requests; one team never reads
another's answers; entries shared by replicas through Redis."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from costwarden.providers.fake_upstream import FakeUpstream
from costwarden.records import Status
from costwarden.savings.exact_cache import CacheEntry, MemoryCacheStore, is_deterministic
from tests.savings.conftest import RunningGateway, StartGateway, model, savings_settings

QUESTION = [{"role": "user", "content": "What does the exact cache key on?"}]


def _models(upstream: FakeUpstream) -> list[dict[str, Any]]:
    base = f"{upstream.base_url}/v1"
    anthropic_endpoint = {"provider": "anthropic", "upstream_model": "claude-sonnet-4-20250514"}
    return [
        model("gpt-4o-mini", base),
        model("text-embedding-3-small", base),
        model("claude-sonnet-4", base, endpoint=anthropic_endpoint),
    ]


async def _gateway(
    tmp_path: Path,
    upstream: FakeUpstream,
    start_gateway: StartGateway,
    cache: dict[str, Any] | None = None,
    **sections: Any,
) -> RunningGateway:
    savings = {"exact_cache": {"enabled": True, **(cache or {})}}
    settings = savings_settings(tmp_path, _models(upstream), savings, **sections)
    gw = await start_gateway(settings)
    gw.upstream = upstream
    return gw


def _client(gw: RunningGateway, key: str | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=key or gw.key, max_retries=0)


async def _ask(gw: RunningGateway, key: str | None = None, **extra: Any) -> Any:
    arguments: dict[str, Any] = {"model": "gpt-4o-mini", "messages": QUESTION, "temperature": 0}
    arguments.update(extra)
    return await _client(gw, key).chat.completions.with_raw_response.create(**arguments)


async def test_a_repeated_deterministic_request_is_served_from_cache(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    first = await _ask(gw)
    sent = len(upstream.requests)
    second = await _ask(gw)
    assert len(upstream.requests) == sent  # no upstream call for the hit
    assert second.headers["x-costwarden-cache"] == "hit-exact"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    original = await gw.record(first.headers["x-request-id"])
    hit = await gw.record(second.headers["x-request-id"])
    assert original.cost > 0 and original.savings == []
    assert hit.status is Status.OK and hit.attempts == [] and hit.cost == Decimal(0)
    [saving] = hit.savings
    assert saving.kind == "cache_exact"
    assert saving.cost_saved == original.cost
    assert saving.tokens_saved == original.usage.total_tokens
    assert Decimal(second.headers["x-costwarden-saved"]) == original.cost


async def test_a_streamed_answer_is_cached_and_a_hit_is_replayed_as_a_stream(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    client = _client(gw)
    options = {"include_usage": True}
    texts, usages = [], []
    for _ in range(2):
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=QUESTION,
            temperature=0,
            stream=True,
            stream_options=options,
        )
        parts, usage = [], None
        async for chunk in stream:
            parts.extend(c.delta.content or "" for c in chunk.choices)
            usage = chunk.usage or usage
        texts.append("".join(parts))
        usages.append(usage)
    assert len([r for r in upstream.requests if r.path.endswith("/chat/completions")]) == 1
    assert texts[0] and texts[0] == texts[1]
    assert usages[1] is not None and usages[1] == usages[0]
    plain = await _ask(gw)  # a non-streamed request shares the entry
    assert plain.headers["x-costwarden-cache"] == "hit-exact"
    assert plain.parse().choices[0].message.content == texts[0]


async def test_an_anthropic_stream_is_replayed_from_cache(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key=gw.key, max_retries=0)
    messages: list[Any] = []
    for _ in range(2):
        async with client.messages.stream(
            model="claude-sonnet-4",
            max_tokens=64,
            messages=QUESTION,
            extra_body={"temperature": 0},
        ) as stream:
            messages.append(await stream.get_final_message())
    assert len([r for r in upstream.requests if r.path.endswith("/messages")]) == 1
    assert messages[0].content[0].text == messages[1].content[0].text
    assert messages[1].usage.output_tokens == messages[0].usage.output_tokens
    assert messages[1].stop_reason == messages[0].stop_reason


async def test_only_deterministic_or_opted_in_requests_are_cached(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    for _ in range(2):
        sampled = await _ask(gw, temperature=0.7)
        assert "x-costwarden-cache" not in sampled.headers
    opt_in = {"x-costwarden-cache": "on"}
    await _ask(gw, temperature=0.7, extra_headers=opt_in)
    assert (await _ask(gw, temperature=0.7, extra_headers=opt_in)).headers[
        "x-costwarden-cache"
    ] == "hit-exact"
    await _ask(gw)
    bypass = await _ask(gw, extra_headers={"x-costwarden-cache": "off"})
    assert "x-costwarden-cache" not in bypass.headers


async def test_embeddings_are_deterministic_and_cached(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    client = _client(gw)
    first = await client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="cache me"
    )
    second = await client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="cache me"
    )
    assert "x-costwarden-cache" not in first.headers
    assert second.headers["x-costwarden-cache"] == "hit-exact"
    assert second.parse().data[0].embedding == first.parse().data[0].embedding


async def test_another_team_never_reads_the_entry(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    await _ask(gw)
    same_team = await gw.new_key("bob", "research")
    other_team = await gw.new_key("carol", "sales")
    assert (await _ask(gw, same_team)).headers.get("x-costwarden-cache") == "hit-exact"
    assert "x-costwarden-cache" not in (await _ask(gw, other_team)).headers


async def test_an_upstream_error_is_never_cached(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    failing = {"x_fake": {"status": 400}}
    for _ in range(2):
        with pytest.raises(openai.BadRequestError):
            await _ask(gw, extra_body=failing)
    assert len([r for r in upstream.requests if r.path.endswith("/chat/completions")]) == 2


async def test_replicas_share_entries_through_redis(
    tmp_path: Path,
    upstream: FakeUpstream,
    start_gateway: StartGateway,
    redis_url: str,
    key_prefix: str,
) -> None:
    state = {"backend": "redis", "redis_url": redis_url, "key_prefix": key_prefix}
    first = await _gateway(tmp_path / "a", upstream, start_gateway, state=state)
    second = await _gateway(tmp_path / "b", upstream, start_gateway, state=state)
    await _ask(first)
    key = await second.new_key("alice", "research")
    hit = await _ask(second, key)
    assert hit.headers["x-costwarden-cache"] == "hit-exact"


def _entry(name: str) -> CacheEntry:
    return CacheEntry({"id": name}, "0.001", 10, f"cw-{name}", 0.0)


async def test_memory_store_expires_and_evicts() -> None:
    now = [0.0]
    store = MemoryCacheStore(max_entries=2, clock=lambda: now[0])
    a, b, c = _entry("a"), _entry("b"), _entry("c")
    await store.put("a", a, ttl_s=10)
    await store.put("b", b, ttl_s=10)
    assert await store.get("a") == a  # a is now the most recently used
    await store.put("c", c, ttl_s=10)
    assert await store.get("b") is None and await store.get("a") == a
    now[0] = 11.0
    assert await store.get("a") is None


def test_an_entry_round_trips_through_its_redis_encoding() -> None:
    entry = CacheEntry({"choices": [{"message": {"content": "é"}}]}, None, 12, "cw-1", 1.5)
    assert CacheEntry.from_json(entry.to_json()) == entry


async def test_an_answer_over_the_size_limit_is_not_kept(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway, {"max_answer_bytes": 200})
    client = _client(gw)
    for _ in range(2):
        raw = await client.embeddings.with_raw_response.create(
            model="text-embedding-3-small", input="too big to keep"
        )
        assert "x-costwarden-cache" not in raw.headers


def test_deterministic_means_temperature_zero_and_one_choice() -> None:
    assert is_deterministic("chat.completions", {"temperature": 0})
    assert not is_deterministic("chat.completions", {})
    assert not is_deterministic("chat.completions", {"temperature": 0, "n": 3})
    assert is_deterministic("embeddings", {})
