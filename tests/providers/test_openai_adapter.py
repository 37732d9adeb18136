"""OpenAI adapter: request building, usage normalisation, stream tracking."""

from __future__ import annotations

import json
import random
from typing import Any

import orjson
import pytest

from costwarden.config import EndpointConfig
from costwarden.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES
from costwarden.providers.fake_common import Answer, StreamPlan, generate
from costwarden.providers.fake_openai import chat_stream, completion_stream, usage_object
from costwarden.providers.openai import OpenAIAdapter, OpenAIStreamTracker, openai_usage
from costwarden.records import TokenUsage

ADAPTER = OpenAIAdapter()
BODY: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_url_auth_and_body_for_openai() -> None:
    endpoint = EndpointConfig(api_base="https://api.openai.com/v1/")
    req = ADAPTER.prepare(CHAT, endpoint, BODY, "sk-live", stream=False)
    assert req.url == "https://api.openai.com/v1/chat/completions"
    assert req.headers["Authorization"] == "Bearer sk-live"
    assert req.headers["Content-Type"] == "application/json"
    assert orjson.loads(req.body) == BODY  # nothing added to a non-streamed call


@pytest.mark.parametrize(("api", "path"), [(CHAT, "/chat/completions"),
                                           (COMPLETIONS, "/completions"),
                                           (EMBEDDINGS, "/embeddings")])
def test_each_api_has_its_path(api: str, path: str) -> None:
    req = ADAPTER.prepare(api, EndpointConfig(api_base="http://h/v1"), BODY, None, False)
    assert req.url == "http://h/v1" + path


def test_azure_uses_api_key_header_and_api_version_query() -> None:
    endpoint = EndpointConfig(
        api_base="https://acme.openai.azure.com/openai/deployments/gpt4o",
        api_key_header="api-key",
        query_params={"api-version": "2024-10-21"},
    )
    req = ADAPTER.prepare(CHAT, endpoint, BODY, "azure-secret", stream=False)
    assert req.url == ("https://acme.openai.azure.com/openai/deployments/gpt4o"
                       "/chat/completions?api-version=2024-10-21")
    assert req.headers["api-key"] == "azure-secret"
    assert "Authorization" not in req.headers


def test_self_hosted_without_key_sends_no_auth_header() -> None:
    req = ADAPTER.prepare(CHAT, EndpointConfig(api_base="http://vllm:8000/v1"), BODY, None, False)
    assert {k.lower() for k in req.headers} == {"content-type", "accept"}


def test_stream_asks_for_usage_and_keeps_client_stream_options() -> None:
    body = {**BODY, "stream": True, "stream_options": {"include_obfuscation": False}}
    req = ADAPTER.prepare(CHAT, EndpointConfig(api_base="http://h/v1"), body, "k", stream=True)
    sent = orjson.loads(req.body)
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert body["stream_options"] == {"include_obfuscation": False}  # caller's dict untouched


def test_unserved_api_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="messages"):
        ADAPTER.prepare(MESSAGES, EndpointConfig(api_base="http://h"), BODY, None, False)
    with pytest.raises(ValueError, match="does not stream"):
        ADAPTER.stream_tracker(EMBEDDINGS)


def test_usage_with_cache_and_reasoning_details() -> None:
    parsed = ADAPTER.parse_usage(CHAT, {"model": "o3-mini-2025-01-31", "usage": {
        "prompt_tokens": 2000, "completion_tokens": 300, "total_tokens": 2300,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 256},
    }})
    assert parsed.reported_model == "o3-mini-2025-01-31"
    assert parsed.usage == TokenUsage(input_tokens=2000, output_tokens=300,
                                      cache_read_tokens=1024, reasoning_tokens=256)


@pytest.mark.parametrize("usage", [
    {"prompt_tokens": 10, "completion_tokens": 5},
    {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": None,
     "completion_tokens_details": None},
    {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": None}},
    {"prompt_tokens": 10.0, "completion_tokens": 5, "total_tokens": "15"},
])
def test_usage_tolerates_missing_and_null_details(usage: dict[str, Any]) -> None:
    assert openai_usage(usage) == TokenUsage(input_tokens=10, output_tokens=5)


def test_usage_from_deepseek_cache_fields() -> None:
    usage = openai_usage({"prompt_tokens": 100, "completion_tokens": 1,
                          "prompt_cache_hit_tokens": 64, "prompt_cache_miss_tokens": 36})
    assert usage.cache_read_tokens == 64


def test_embeddings_usage() -> None:
    parsed = ADAPTER.parse_usage(EMBEDDINGS, {"model": "text-embedding-3-small",
                                             "usage": {"prompt_tokens": 8, "total_tokens": 8}})
    assert parsed.usage == TokenUsage(input_tokens=8)
    only_total = ADAPTER.parse_usage(EMBEDDINGS, {"usage": {"total_tokens": 9}})
    assert only_total.usage == TokenUsage(input_tokens=9)
    assert only_total.reported_model is None


def test_response_without_usage() -> None:
    assert ADAPTER.parse_usage(CHAT, {"model": "m", "usage": None}).usage is None
    assert ADAPTER.parse_usage(CHAT, {"model": "m"}).usage is None


def answer(pieces: int, reasoning: bool = False) -> Answer:
    return Answer(response_id="chatcmpl-1", created=1, model="gpt-4o-mini-2024-07-18",
                  prompt_tokens=42, cache_read_tokens=0, cache_write_tokens=0,
                  generation=generate(pieces, None, reasoning), with_usage=True)


def stream_bytes(plan: StreamPlan, cut_after: int | None = None) -> bytes:
    content = plan.content if cut_after is None else plan.content[:cut_after]
    return b"".join((*plan.head, *content, *(plan.tail if cut_after is None else ())))


def feed_split(stream: bytes, rng: random.Random | None) -> OpenAIStreamTracker:
    tracker = OpenAIStreamTracker()
    if rng is None:  # byte by byte
        for i in range(len(stream)):
            tracker.feed(stream[i:i + 1])
        return tracker
    start = 0
    while start < len(stream):
        end = start + rng.randint(1, 97)
        tracker.feed(stream[start:end])
        start = end
    return tracker


def test_tracker_reads_usage_model_and_text_from_any_split() -> None:
    ans = answer(12, reasoning=True)
    stream = stream_bytes(chat_stream(ans, include_usage=True))
    expected_usage = openai_usage(usage_object(ans))
    rng = random.Random(7)
    for split in (None, rng, rng, rng):
        tracker = feed_split(stream, split)
        assert tracker.finished
        assert tracker.usage == expected_usage
        assert tracker.usage.reasoning_tokens == 6
        assert tracker.reported_model == "gpt-4o-mini-2024-07-18"
        assert tracker.text == ans.generation.text


def test_cut_stream_has_text_but_no_usage() -> None:
    ans = answer(10)
    tracker = feed_split(stream_bytes(chat_stream(ans, True), cut_after=4), random.Random(3))
    assert not tracker.finished
    assert tracker.usage is None
    assert tracker.text == "".join(ans.generation.pieces[:4])


def test_stream_without_usage_chunk_finishes_without_usage() -> None:
    tracker = OpenAIStreamTracker()
    tracker.feed(stream_bytes(chat_stream(answer(3), include_usage=False)))
    assert tracker.finished
    assert tracker.usage is None
    assert tracker.text == answer(3).generation.text


def test_legacy_completion_stream() -> None:
    ans = answer(5)
    tracker = ADAPTER.stream_tracker(COMPLETIONS)
    tracker.feed(stream_bytes(completion_stream(ans, include_usage=True)))
    assert tracker.usage == TokenUsage(input_tokens=42, output_tokens=5)
    assert tracker.text == ans.generation.text


def test_tracker_text_includes_reasoning_tool_calls_and_spaced_json() -> None:
    # vLLM/DeepSeek style: json.dumps spacing, reasoning_content, a tool call, usage last.
    chunks = [
        {"model": "deepseek-reasoner", "choices": [{"delta": {"role": "assistant"}}]},
        {"choices": [{"delta": {"reasoning_content": "think "}}], "usage": None},
        {"choices": [{"delta": {"content": "answer "}}]},
        {"choices": [{"delta": {"tool_calls": [
            {"index": 0, "function": {"name": "lookup", "arguments": '{"q":'}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]},
        {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 9}},
    ]
    # json.dumps' default separators put a space after ":" as many servers do.
    stream = b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)
    tracker = OpenAIStreamTracker()
    tracker.feed(stream + b"data: [DONE]\r\n\r\n")
    assert tracker.text == 'think answer lookup{"q":1}'
    assert tracker.usage == TokenUsage(input_tokens=7, output_tokens=9)
    assert tracker.reported_model == "deepseek-reasoner"
    assert tracker.finished


def test_garbled_events_are_ignored() -> None:
    tracker = OpenAIStreamTracker()
    tracker.feed(b"data: {not json\n\ndata: [1, 2]\n\ndata: {\"model\": \"m\"}\n\n")
    tracker.feed(b'data: {"choices": [{"delta": {"content": "ok"}}]}\n\ndata: {broken\n\n')
    assert tracker.reported_model == "m"
    assert tracker.text == "ok"
    assert tracker.usage is None
