"""Anthropic-shaped bodies the fake upstream sends: messages, the SSE event sequence, errors."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import orjson

from costwarden.providers.fake_common import MODEL_SNAPSHOTS, Answer, StreamPlan

_ERROR_TYPES: Mapping[int, str] = MappingProxyType(
    {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        500: "api_error",
        529: "overloaded_error",
    }
)


def error_body(status: int, message: str | None = None) -> bytes:
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps(
        {
            "type": "error",
            "error": {"type": kind, "message": message or f"Simulated {kind} (fake upstream)."},
        }
    )


def _stop_reason(answer: Answer) -> str:
    return "max_tokens" if answer.generation.truncated else "end_turn"


def usage_object(answer: Answer, output_tokens: int) -> dict[str, Any]:
    """Anthropic's split: ``input_tokens`` excludes cache reads and writes."""
    uncached = answer.prompt_tokens - answer.cache_read_tokens - answer.cache_write_tokens
    return {
        "input_tokens": uncached,
        "cache_creation_input_tokens": answer.cache_write_tokens,
        "cache_read_input_tokens": answer.cache_read_tokens,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def message(answer: Answer) -> bytes:
    payload: dict[str, Any] = {
        "id": answer.response_id,
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": [{"type": "text", "text": answer.generation.text}],
        "stop_reason": _stop_reason(answer),
        "stop_sequence": None,
    }
    if answer.with_usage:
        payload["usage"] = usage_object(answer, answer.generation.output_tokens)
    return orjson.dumps(payload)


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def message_stream(answer: Answer) -> StreamPlan:
    start: dict[str, Any] = {
        "id": answer.response_id,
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    delta_usage: dict[str, Any] = {}
    if answer.with_usage:
        start["usage"] = usage_object(answer, 1)  # Anthropic reports a stand-in 1 here
        delta_usage = {"usage": {"output_tokens": answer.generation.output_tokens}}
    head = (
        _event("message_start", {"type": "message_start", "message": start}),
        _event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        b'event: ping\ndata: {"type": "ping"}\n\n',
    )
    prefix = (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":'
    )
    content = tuple(prefix + orjson.dumps(p) + b"}}\n\n" for p in answer.generation.pieces)
    tail = (
        _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": _stop_reason(answer), "stop_sequence": None},
                **delta_usage,
            },
        ),
        _event("message_stop", {"type": "message_stop"}),
    )
    return StreamPlan(head, content, tail)


def models_list(created: int) -> bytes:
    stamp = datetime.fromtimestamp(created, UTC).isoformat().replace("+00:00", "Z")
    ids = sorted(m for m in {*MODEL_SNAPSHOTS.values()} if m.startswith("claude"))
    data = [{"type": "model", "id": i, "display_name": i, "created_at": stamp} for i in ids]
    return orjson.dumps({"data": data, "has_more": False, "first_id": ids[0], "last_id": ids[-1]})
