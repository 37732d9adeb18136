"""Anthropic adapter: request building, cache-aware usage normalisation, stream tracking."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from costwarden.config import EndpointConfig
from costwarden.providers.anthropic import (
    ANTHROPIC_VERSION,
    AnthropicAdapter,
    AnthropicStreamTracker,
    anthropic_usage,
)
from costwarden.providers.base import CHAT, MESSAGES
from costwarden.providers.fake_anthropic import message_stream
from costwarden.providers.fake_common import Answer, StreamPlan, generate
from costwarden.records import TokenUsage

ADAPTER = AnthropicAdapter()
ENDPOINT = EndpointConfig(provider="anthropic", api_base="https://api.anthropic.com/v1")
BODY: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 64,
                        "messages": [{"role": "user", "content": "hi"}]}


def test_url_and_headers() -> None:
    req = ADAPTER.prepare(MESSAGES, ENDPOINT, BODY, "sk-ant-1", stream=False)
    assert req.url == "https://api.anthropic.com/v1/messages"
    assert req.headers["x-api-key"] == "sk-ant-1"
    assert req.headers["anthropic-version"] == ANTHROPIC_VERSION == "2023-06-01"
    assert "Authorization" not in req.headers
    assert orjson.loads(req.body) == BODY


def test_stream_flag_and_version_override_and_bearer_header() -> None:
    endpoint = EndpointConfig(provider="anthropic", api_base="https://proxy/v1",
                              api_key_header="Authorization")
    req = AnthropicAdapter(version="2024-01-01").prepare(MESSAGES, endpoint, BODY, "t", True)
    assert orjson.loads(req.body)["stream"] is True
    assert req.headers["anthropic-version"] == "2024-01-01"
    assert req.headers["Authorization"] == "Bearer t"
    assert "stream" not in BODY


def test_unserved_api_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="chat"):
        ADAPTER.prepare(CHAT, ENDPOINT, BODY, None, False)


def test_usage_adds_cache_reads_and_writes_to_input() -> None:
    parsed = ADAPTER.parse_usage(MESSAGES, {"model": "claude-sonnet-4-5-20250929", "usage": {
        "input_tokens": 50, "cache_creation_input_tokens": 1000,
        "cache_read_input_tokens": 2000, "output_tokens": 120, "service_tier": "standard",
    }})
    assert parsed.reported_model == "claude-sonnet-4-5-20250929"
    assert parsed.usage == TokenUsage(input_tokens=3050, output_tokens=120,
                                      cache_read_tokens=2000, cache_write_tokens=1000)


def test_usage_without_cache_fields() -> None:
    assert anthropic_usage({"input_tokens": 5, "output_tokens": 2,
                            "cache_read_input_tokens": None}) == TokenUsage(5, 2)
    assert ADAPTER.parse_usage(MESSAGES, {"type": "message"}).usage is None


def answer(pieces: int, cache_read: int = 0, cache_write: int = 0) -> Answer:
    return Answer(response_id="msg_01", created=1, model="claude-haiku-4-5-20251001",
                  prompt_tokens=1500, cache_read_tokens=cache_read,
                  cache_write_tokens=cache_write, generation=generate(pieces, None, False),
                  with_usage=True)


def stream_bytes(plan: StreamPlan, cut_after: int | None = None) -> bytes:
    content = plan.content if cut_after is None else plan.content[:cut_after]
    return b"".join((*plan.head, *content, *(plan.tail if cut_after is None else ())))


def feed_randomly(stream: bytes, seed: int) -> AnthropicStreamTracker:
    rng = random.Random(seed)
    tracker = AnthropicStreamTracker()
    start = 0
    while start < len(stream):
        end = start + rng.randint(1, 61)
        tracker.feed(stream[start:end])
        start = end
    return tracker


def test_tracker_byte_by_byte_and_random_splits_agree() -> None:
    ans = answer(9, cache_read=1024)
    stream = stream_bytes(message_stream(ans))
    byte_by_byte = AnthropicStreamTracker()
    for i in range(len(stream)):
        byte_by_byte.feed(stream[i:i + 1])
    for tracker in (byte_by_byte, *(feed_randomly(stream, seed) for seed in range(5))):
        assert tracker.finished
        assert tracker.usage == TokenUsage(input_tokens=1500, output_tokens=9,
                                           cache_read_tokens=1024)
        assert tracker.reported_model == "claude-haiku-4-5-20251001"
        assert tracker.text == ans.generation.text


def test_cut_stream_has_text_but_no_usage() -> None:
    ans = answer(8, cache_write=1024)
    tracker = feed_randomly(stream_bytes(message_stream(ans), cut_after=3), 11)
    assert not tracker.finished
    assert tracker.usage is None  # message_start's output count is only a placeholder
    assert tracker.reported_model == "claude-haiku-4-5-20251001"
    assert tracker.text == "".join(ans.generation.pieces[:3])


def sse(event: str, payload: dict[str, Any], with_name: bool = True) -> bytes:
    head = f"event: {event}\n".encode() if with_name else b""
    return head + b"data: " + orjson.dumps(payload) + b"\n\n"


def test_thinking_tool_json_and_cumulative_delta_usage() -> None:
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": {
            "model": "claude-opus-4-1-20250805",
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 1}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "thinking_delta", "thinking": "hmm "}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "signature_delta", "signature": "c2ln"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": '{"a":'}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 2,
                                 "delta": {"type": "text_delta", "text": "done"}}),
        # newer API versions repeat cumulative prompt fields here (null when unknown)
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                           "usage": {"input_tokens": 10, "cache_creation_input_tokens": None,
                                     "output_tokens": 42}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    named = AnthropicStreamTracker()
    unnamed = AnthropicStreamTracker()  # servers that send only data lines
    for event, payload in events:
        named.feed(sse(event, payload))
        unnamed.feed(sse(event, payload, with_name=False))
    for tracker in (named, unnamed):
        assert tracker.text == 'hmm {"a":done'
        assert tracker.usage == TokenUsage(input_tokens=100, output_tokens=42,
                                           cache_read_tokens=90)
        assert tracker.reported_model == "claude-opus-4-1-20250805"
        assert tracker.finished
