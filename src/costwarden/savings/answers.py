"""One answer, two wire shapes: a streamed answer folded into its non-streamed JSON, and a
stored JSON answer replayed as the SSE stream the client asked for.

Savings stages keep answers in the non-streamed shape (what a cache stores, what a cascade's
scorer reads). A client that asked ``stream: true`` for an answer served without an upstream
stream (a cache hit, a cascade's accepted tier) gets a proper stream: OpenAI chunks ending in
``data: [DONE]`` (with the usage chunk when ``stream_options.include_usage`` was asked), or
Anthropic's ``message_start`` … ``message_stop`` events, so SDKs parse it like any other.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from costwarden.providers.base import CHAT, MESSAGES
from costwarden.providers.sse import SSEParser

# A replayed stream sends the text in pieces of this many characters: enough events for a
# client to see a stream, few enough that replay costs nothing next to an upstream call.
_PIECE_CHARS = 64


class StreamAssembler:
    """Folds the SSE bytes of a chat or messages stream into the non-streamed answer.

    ``answer()`` is None when the stream did not finish or holds something this fold does
    not rebuild faithfully (several choices): such answers are simply not reused.
    """

    def __init__(self, api: str) -> None:
        self._api = api
        self._parser = SSEParser()
        self._events: list[tuple[str, dict[str, Any]]] = []
        self._done = False

    def feed(self, chunk: bytes) -> None:
        for event in self._parser.feed(chunk):
            if event.data == b"[DONE]":
                self._done = True
                continue
            try:
                payload = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(payload, dict):
                self._events.append((event.event, payload))

    def answer(self) -> dict[str, Any] | None:
        if self._api == CHAT:
            return _fold_chat(self._events) if self._done else None
        if self._api == MESSAGES:
            return _fold_messages(self._events)
        return None


def _fold_chat(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any] | None:
    head: dict[str, Any] | None = None
    message: dict[str, Any] = {"role": "assistant", "content": None}
    finish: str | None = None
    usage: Any = None
    for _, chunk in events:
        head = head or chunk
        usage = chunk.get("usage") or usage
        choices = chunk.get("choices") or []
        if len(choices) > 1 or any(c.get("index", 0) != 0 for c in choices):
            return None
        for choice in choices:
            _merge_delta(message, choice.get("delta") or {})
            finish = choice.get("finish_reason") or finish
    if head is None:
        return None
    answer = {
        "id": head.get("id"),
        "object": "chat.completion",
        "created": head.get("created"),
        "model": head.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }
    if usage is not None:
        answer["usage"] = usage
    return answer


def _merge_delta(message: dict[str, Any], delta: dict[str, Any]) -> None:
    if isinstance(delta.get("content"), str):
        message["content"] = (message["content"] or "") + delta["content"]
    for call in delta.get("tool_calls") or []:
        calls = message.setdefault("tool_calls", [])
        index = call.get("index", len(calls))
        while len(calls) <= index:
            empty = {"name": "", "arguments": ""}
            calls.append({"id": None, "type": "function", "function": empty})
        target = calls[index]
        target["id"] = call.get("id") or target["id"]
        function = call.get("function") or {}
        target["function"]["name"] += function.get("name") or ""
        target["function"]["arguments"] += function.get("arguments") or ""


def _fold_messages(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any] | None:
    message: dict[str, Any] | None = None
    finished = False
    for _, event in events:
        kind = event.get("type")
        if kind == "message_start":
            message = dict(event.get("message") or {})
            message["content"] = []
        elif kind == "message_stop":
            finished = True
        elif message is not None:
            _apply_event(message, kind, event)
    if message is None or not finished:
        return None
    for block in message["content"]:
        if block.get("type") == "tool_use" and isinstance(block.get("input"), str):
            block["input"] = orjson.loads(block["input"] or "{}")
    return message


def _apply_event(message: dict[str, Any], kind: Any, event: dict[str, Any]) -> None:
    if kind == "content_block_start":
        message["content"].append(dict(event.get("content_block") or {}))
    elif kind == "content_block_delta" and message["content"]:
        _merge_block(message["content"][-1], event.get("delta") or {})
    elif kind == "message_delta":
        message.update(event.get("delta") or {})
        message["usage"] = {**(message.get("usage") or {}), **(event.get("usage") or {})}


def _merge_block(block: dict[str, Any], delta: dict[str, Any]) -> None:
    if delta.get("type") == "text_delta":
        block["text"] = block.get("text", "") + delta.get("text", "")
    elif delta.get("type") == "input_json_delta":
        previous = block.get("input")
        text = previous if isinstance(previous, str) else ""
        block["input"] = text + delta.get("partial_json", "")


def replay_stream(api: str, answer: dict[str, Any], *, include_usage: bool) -> bytes:
    """The SSE stream of a stored non-streamed answer (see module docstring)."""
    events = _replay_messages(answer) if api == MESSAGES else _replay_chat(answer, include_usage)
    return b"".join(events)


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    prefix = f"event: {event}\n".encode() if event else b""
    return prefix + b"data: " + orjson.dumps(data) + b"\n\n"


def _pieces(text: str) -> Iterator[str]:
    for start in range(0, len(text), _PIECE_CHARS):
        yield text[start : start + _PIECE_CHARS]


def _replay_chat(answer: dict[str, Any], include_usage: bool) -> Iterator[bytes]:
    base = {
        "id": answer.get("id"),
        "object": "chat.completion.chunk",
        "created": answer.get("created"),
        "model": answer.get("model"),
    }
    choice = (answer.get("choices") or [{}])[0]
    message = choice.get("message") or {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        body = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return _sse(body)

    yield chunk({"role": "assistant", "content": ""})
    for piece in _pieces(message.get("content") or ""):
        yield chunk({"content": piece})
    for index, call in enumerate(message.get("tool_calls") or []):
        yield chunk({"tool_calls": [{**call, "index": index}]})
    yield chunk({}, choice.get("finish_reason") or "stop")
    if include_usage and answer.get("usage") is not None:
        yield _sse({**base, "choices": [], "usage": answer["usage"]})
    yield b"data: [DONE]\n\n"


def _replay_messages(answer: dict[str, Any]) -> Iterator[bytes]:
    usage = answer.get("usage") or {}
    start = {**answer, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**usage, "output_tokens": 0}
    yield _sse({"type": "message_start", "message": start}, "message_start")
    for index, block in enumerate(answer.get("content") or []):
        yield from _replay_block(index, block)
    delta = {"stop_reason": answer.get("stop_reason"), "stop_sequence": answer.get("stop_sequence")}
    tail = {"output_tokens": usage.get("output_tokens", 0)}
    yield _sse({"type": "message_delta", "delta": delta, "usage": tail}, "message_delta")
    yield _sse({"type": "message_stop"}, "message_stop")


def _replay_block(index: int, block: dict[str, Any]) -> Iterator[bytes]:
    kind = block.get("type")
    if kind == "text":
        opening: dict[str, Any] = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in _pieces(block.get("text") or "")]
    elif kind == "tool_use":
        opening = {**block, "input": {}}
        arguments = orjson.dumps(block["input"]).decode()
        deltas = [{"type": "input_json_delta", "partial_json": arguments}]
    else:  # thinking and other blocks: sent whole, as they were stored
        opening, deltas = block, []
    start = {"type": "content_block_start", "index": index, "content_block": opening}
    yield _sse(start, "content_block_start")
    for delta in deltas:
        body = {"type": "content_block_delta", "index": index, "delta": delta}
        yield _sse(body, "content_block_delta")
    yield _sse({"type": "content_block_stop", "index": index}, "content_block_stop")
