"""Adapters against the fake upstream over real HTTP, the way the gateway uses them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
import pytest_asyncio

from costwarden.config import EndpointConfig
from costwarden.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES, ProviderAdapter
from costwarden.providers.fake_common import CACHE_PREFIX_TOKENS
from costwarden.providers.fake_upstream import FakeUpstream, FakeUpstreamConfig
from costwarden.providers.registry import adapter_for
from costwarden.records import TokenUsage

pytestmark = pytest.mark.asyncio(loop_scope="module")
KEY = "upstream-secret"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(FakeUpstreamConfig(api_key=KEY)) as fake:
        yield fake


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient() as client:
        yield client


async def call(http: httpx2.AsyncClient, adapter: ProviderAdapter, api: str,
               endpoint: EndpointConfig, body: dict[str, Any], *,
               stream: bool = False) -> tuple[int, Any]:
    """One upstream call: JSON payload, or the stream tracker fed the raw bytes."""
    req = adapter.prepare(api, endpoint, body, KEY, stream)
    if not stream:
        resp = await http.post(req.url, headers=req.headers, content=req.body)
        return resp.status_code, resp.json()
    tracker = adapter.stream_tracker(api)
    async with http.stream("POST", req.url, headers=req.headers, content=req.body) as resp:
        try:
            async for chunk in resp.aiter_raw():
                tracker.feed(chunk)
        except httpx2.RemoteProtocolError:
            pass  # a cut stream: the tracker has what arrived
        return resp.status_code, tracker


async def test_openai_stream_and_non_stream_agree(
    upstream: FakeUpstream, http: httpx2.AsyncClient
) -> None:
    adapter = adapter_for("openai")
    endpoint = EndpointConfig(api_base=upstream.base_url + "/v1")
    body = {"model": "gpt-5-mini", "messages": [{"role": "user", "content": "price me " * 1100}]}
    status, payload = await call(http, adapter, CHAT, endpoint, body)
    assert status == 200
    plain = adapter.parse_usage(CHAT, payload)
    streamed = {**body, "stream": True}
    status, tracker = await call(http, adapter, CHAT, endpoint, streamed, stream=True)
    assert status == 200
    assert upstream.requests[-1].body["stream_options"] == {"include_usage": True}
    assert tracker.finished
    assert tracker.reported_model == plain.reported_model == "gpt-5-mini-2025-08-07"
    assert plain.usage is not None and tracker.usage is not None
    assert tracker.usage.cache_read_tokens == CACHE_PREFIX_TOKENS  # second sight of the prefix
    assert plain.usage.cache_read_tokens == 0
    tracker.usage.cache_read_tokens = 0
    assert tracker.usage == plain.usage
    assert plain.usage.reasoning_tokens > 0
    assert tracker.text == payload["choices"][0]["message"]["content"]


async def test_azure_style_endpoint(upstream: FakeUpstream, http: httpx2.AsyncClient) -> None:
    endpoint = EndpointConfig(api_base=upstream.base_url + "/openai/deployments/dep1",
                              api_key_header="api-key", query_params={"api-version": "2024-10-21"})
    status, payload = await call(http, adapter_for("openai"), EMBEDDINGS, endpoint,
                                 {"model": "text-embedding-3-small", "input": "one two three"})
    assert status == 200
    assert adapter_for("openai").parse_usage(EMBEDDINGS, payload).usage == TokenUsage(3)
    sent = upstream.requests[-1]
    assert sent.query == "api-version=2024-10-21"
    assert sent.headers["api-key"] == KEY
    assert "authorization" not in sent.headers


async def test_wrong_key_is_refused(upstream: FakeUpstream, http: httpx2.AsyncClient) -> None:
    req = adapter_for("openai").prepare(
        COMPLETIONS, EndpointConfig(api_base=upstream.base_url + "/v1"),
        {"model": "m", "prompt": "x"}, "not-the-key", False)
    resp = await http.post(req.url, headers=req.headers, content=req.body)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_api_key"


async def test_openai_cut_stream(upstream: FakeUpstream, http: httpx2.AsyncClient) -> None:
    body = {"model": "gpt-4o-mini", "stream": True, "x_fake": {"cut_after": 5},
            "messages": [{"role": "user", "content": "hello"}]}
    endpoint = EndpointConfig(api_base=upstream.base_url + "/v1")
    _, tracker = await call(http, adapter_for("openai"), CHAT, endpoint, body, stream=True)
    assert not tracker.finished
    assert tracker.usage is None
    assert len(tracker.text.split()) == 5


@pytest.mark.parametrize("cut_after", [None, 2])
async def test_anthropic_cached_stream(
    upstream: FakeUpstream, http: httpx2.AsyncClient, cut_after: int | None
) -> None:
    adapter = adapter_for("anthropic")
    endpoint = EndpointConfig(provider="anthropic", api_base=upstream.base_url + "/v1")
    body: dict[str, Any] = {
        "model": "claude-opus-4-1", "max_tokens": 20,
        "system": [{"type": "text", "text": f"policy {cut_after} " * 1500,
                    "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "summarise"}],
    }
    status, payload = await call(http, adapter, MESSAGES, endpoint, body)
    assert status == 200
    first = adapter.parse_usage(MESSAGES, payload).usage
    assert first is not None
    assert first.cache_write_tokens == CACHE_PREFIX_TOKENS
    assert upstream.requests[-1].headers["x-api-key"] == KEY
    if cut_after is not None:
        body["x_fake"] = {"cut_after": cut_after}
    streamed = {**body, "stream": True}
    _, tracker = await call(http, adapter, MESSAGES, endpoint, streamed, stream=True)
    assert tracker.reported_model == "claude-opus-4-1-20250805"
    if cut_after is None:
        assert tracker.finished
        assert tracker.usage == TokenUsage(
            input_tokens=first.input_tokens, output_tokens=first.output_tokens,
            cache_read_tokens=CACHE_PREFIX_TOKENS)
        assert tracker.text == payload["content"][0]["text"]
    else:
        assert not tracker.finished
        assert tracker.usage is None
        assert len(tracker.text.split()) == cut_after
