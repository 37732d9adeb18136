"""Anthropic Messages wire protocol.

Anthropic's ``input_tokens`` excludes cache reads and cache writes; ``records.py`` counts all
prompt tokens in ``input_tokens``, so normalising adds the two cache fields back in.
"""

from __future__ import annotations

from typing import Any

import orjson

from costwarden.config import EndpointConfig
from costwarden.providers.base import MESSAGES, ParsedUsage, UpstreamRequest
from costwarden.providers.sse import DeferredText, SSEParser
from costwarden.providers.wire import (
    parsed_usage,
    request_headers,
    sub_dict,
    token_count,
    upstream_url,
)
from costwarden.records import TokenUsage

ANTHROPIC_VERSION = "2023-06-01"
_DELTA_TEXT_FIELDS = ("text", "partial_json", "thinking")  # text / input_json / thinking deltas


class AnthropicAdapter:
    name = "anthropic"
    apis = frozenset({MESSAGES})

    def __init__(self, version: str = ANTHROPIC_VERSION) -> None:
        self.version = version

    def prepare(
        self,
        api: str,
        endpoint: EndpointConfig,
        body: dict[str, Any],
        api_key: str | None,
        stream: bool,
    ) -> UpstreamRequest:
        if api != MESSAGES:
            raise ValueError(f"Anthropic adapter does not serve api {api!r}")
        out = dict(body)
        if stream:
            out["stream"] = True
        headers = request_headers(endpoint, "x-api-key", api_key)
        headers["anthropic-version"] = self.version
        return UpstreamRequest(
            url=upstream_url(endpoint, "/messages"),
            headers=headers,
            body=orjson.dumps(out),
        )

    def parse_usage(self, api: str, payload: dict[str, Any]) -> ParsedUsage:
        return parsed_usage(payload, anthropic_usage)

    def stream_tracker(self, api: str) -> AnthropicStreamTracker:
        if api != MESSAGES:
            raise ValueError(f"Anthropic adapter does not serve api {api!r}")
        return AnthropicStreamTracker()


def anthropic_usage(usage: dict[str, Any]) -> TokenUsage:
    cache_read = token_count(usage.get("cache_read_input_tokens"))
    cache_write = token_count(usage.get("cache_creation_input_tokens"))
    return TokenUsage(
        input_tokens=token_count(usage.get("input_tokens")) + cache_read + cache_write,
        output_tokens=token_count(usage.get("output_tokens")),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


class AnthropicStreamTracker:
    """Watches an Anthropic SSE stream.

    ``message_start`` carries the prompt side of usage and the model; ``message_delta`` the
    cumulative output count (and, on newer API versions, cumulative prompt fields too). Usage
    is reported only once a ``message_delta`` carried an output count: before that the count is
    a stand-in value, so a stream cut earlier (or from a server that sends no usage) reports
    no usage and the caller counts the text.
    Events are told apart by their ``event:`` name, so pings and block boundaries are never
    parsed, and text deltas are decoded only on demand.
    """

    __slots__ = ("_finished", "_model", "_output_seen", "_parser", "_raw_usage", "_text")

    def __init__(self) -> None:
        self._parser = SSEParser()
        self._text = DeferredText(_delta_text)
        self._raw_usage: dict[str, Any] = {}
        self._output_seen = False
        self._model: str | None = None
        self._finished = False

    def feed(self, chunk: bytes) -> None:
        for event, data in self._parser.feed(chunk):
            kind = event or _event_type(data)
            if kind == "content_block_delta":
                self._text.add_raw(data)
            elif kind == "message_start":
                self._take_message_start(data)
            elif kind == "message_delta":
                delta = _loads_object(data)
                self._take_usage(delta)
                # A server that sends no usage at all must not read as "0 tokens generated".
                self._output_seen |= sub_dict(delta, "usage").get("output_tokens") is not None
            elif kind == "message_stop":
                self._finished = True

    def _take_message_start(self, data: bytes) -> None:
        message = sub_dict(_loads_object(data), "message")
        model = message.get("model")
        if isinstance(model, str) and model:
            self._model = model
        self._take_usage(message)

    def _take_usage(self, holder: dict[str, Any]) -> None:
        for key, value in sub_dict(holder, "usage").items():
            if value is not None:  # later events repeat fields as null; keep what we know
                self._raw_usage[key] = value

    @property
    def usage(self) -> TokenUsage | None:
        return anthropic_usage(self._raw_usage) if self._output_seen else None

    @property
    def reported_model(self) -> str | None:
        return self._model

    @property
    def text(self) -> str:
        return self._text.text

    @property
    def finished(self) -> bool:
        return self._finished


def _loads_object(data: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}  # a garbled event must not break the pass-through
    return payload if isinstance(payload, dict) else {}


def _event_type(data: bytes) -> str:
    """Event name for servers that omit ``event:`` lines (the JSON repeats it as ``type``)."""
    kind = _loads_object(data).get("type")
    return kind if isinstance(kind, str) else ""


def _delta_text(data: bytes) -> str:
    delta = sub_dict(_loads_object(data), "delta")
    for field in _DELTA_TEXT_FIELDS:
        value = delta.get(field)
        if isinstance(value, str):
            return value
    return ""
