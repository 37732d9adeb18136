"""OpenAI wire protocol: chat completions, legacy completions and embeddings.

Also serves every OpenAI-compatible upstream: Azure OpenAI (``api-key`` header plus an
``api-version`` query), vLLM, Ollama, llama.cpp, DeepSeek and the like.

Usage convention on this wire already matches ``records.py``: ``prompt_tokens`` includes cached
tokens and ``completion_tokens`` includes reasoning tokens, so normalising is a rename.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from costwarden.config import EndpointConfig
from costwarden.providers.base import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    ParsedUsage,
    UpstreamRequest,
)
from costwarden.providers.sse import DeferredText, SSEParser
from costwarden.providers.wire import (
    parsed_usage,
    request_headers,
    sub_dict,
    token_count,
    upstream_url,
)
from costwarden.records import TokenUsage

_PATHS = {CHAT: "/chat/completions", COMPLETIONS: "/completions", EMBEDDINGS: "/embeddings"}
_STREAMING_APIS = frozenset({CHAT, COMPLETIONS})
# A chunk worth parsing eagerly: it carries a usage object (``"usage": null`` does not match).
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_DONE = b"[DONE]"
# Streamed text lives in these delta fields: answer, reasoning (DeepSeek/vLLM and
# OpenRouter/Ollama spellings) and refusals; tool-call arguments are handled apart.
_DELTA_TEXT_FIELDS = ("content", "reasoning_content", "reasoning", "refusal")


class OpenAIAdapter:
    name = "openai"
    apis = frozenset({CHAT, COMPLETIONS, EMBEDDINGS})

    def prepare(
        self,
        api: str,
        endpoint: EndpointConfig,
        body: dict[str, Any],
        api_key: str | None,
        stream: bool,
    ) -> UpstreamRequest:
        path = _PATHS.get(api)
        if path is None:
            raise ValueError(f"OpenAI adapter does not serve api {api!r}")
        out = dict(body)  # shallow: the caller's dict stays as the client sent it
        if stream:
            out["stream"] = True
            # Without this OpenAI streams carry no usage at all; keep the client's other options.
            options = out.get("stream_options")
            out["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        return UpstreamRequest(
            url=upstream_url(endpoint, path),
            headers=request_headers(endpoint, "Authorization", api_key),
            body=orjson.dumps(out),
        )

    def parse_usage(self, api: str, payload: dict[str, Any]) -> ParsedUsage:
        return parsed_usage(payload, openai_usage)

    def stream_tracker(self, api: str) -> OpenAIStreamTracker:
        if api not in _STREAMING_APIS:
            raise ValueError(f"api {api!r} does not stream")
        return OpenAIStreamTracker()


def openai_usage(usage: dict[str, Any]) -> TokenUsage:
    """Normalise an OpenAI(-compatible) usage object; absent or null details count as 0."""
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))  # some servers use input_*
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    input_tokens = token_count(prompt)
    if prompt is None:  # embeddings from some servers report only total_tokens
        input_tokens = token_count(usage.get("total_tokens"))
    cached = sub_dict(usage, "prompt_tokens_details").get("cached_tokens")
    if cached is None:  # DeepSeek reports its cache hits beside prompt_tokens
        cached = usage.get("prompt_cache_hit_tokens")
    reasoning = sub_dict(usage, "completion_tokens_details").get("reasoning_tokens")
    return TokenUsage(
        input_tokens=input_tokens,
        output_tokens=token_count(completion),
        cache_read_tokens=token_count(cached),
        reasoning_tokens=token_count(reasoning),
    )


class OpenAIStreamTracker:
    """Watches an OpenAI SSE stream for usage, model and text.

    Only the first chunk (model) and chunks carrying a usage object are parsed as they pass;
    content chunks are kept raw and decoded only if ``text`` is read (see ``DeferredText``).
    """

    __slots__ = ("_finished", "_model", "_parser", "_text", "_usage")

    def __init__(self) -> None:
        self._parser = SSEParser()
        self._text = DeferredText(_payload_text)
        self._usage: TokenUsage | None = None
        self._model: str | None = None
        self._finished = False

    def feed(self, chunk: bytes) -> None:
        for _, data in self._parser.feed(chunk):
            if data == _DONE:
                self._finished = True
            elif self._model is None or _USAGE_OBJECT.search(data) is not None:
                self._take_parsed(data)
            else:
                self._text.add_raw(data)

    def _take_parsed(self, data: bytes) -> None:
        payload = _loads_object(data)
        if payload is None:
            return
        model = payload.get("model")
        if isinstance(model, str) and model:
            self._model = model
        usage = payload.get("usage")
        if isinstance(usage, dict):
            self._usage = openai_usage(usage)
        self._text.add_text(_chunk_text(payload))

    @property
    def usage(self) -> TokenUsage | None:
        return self._usage

    @property
    def reported_model(self) -> str | None:
        return self._model

    @property
    def text(self) -> str:
        return self._text.text

    @property
    def finished(self) -> bool:
        return self._finished


def _loads_object(data: bytes) -> dict[str, Any] | None:
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None  # a garbled event must not break the pass-through
    return payload if isinstance(payload, dict) else None


def _payload_text(data: bytes) -> str:
    payload = _loads_object(data)
    return "" if payload is None else _chunk_text(payload)


def _chunk_text(payload: dict[str, Any]) -> str:
    choices = payload.get("choices")
    if not isinstance(choices, list):
        return ""
    parts: list[str] = []
    for choice in choices:
        if isinstance(choice, dict):
            _choice_text(choice, parts)
    return "".join(parts)


def _choice_text(choice: dict[str, Any], parts: list[str]) -> None:
    text = choice.get("text")  # legacy completions
    if isinstance(text, str):
        parts.append(text)
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return
    for field in _DELTA_TEXT_FIELDS:
        value = delta.get(field)
        if isinstance(value, str):
            parts.append(value)
    calls = delta.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            function = sub_dict(call, "function") if isinstance(call, dict) else {}
            for field in ("name", "arguments"):
                value = function.get(field)
                if isinstance(value, str):
                    parts.append(value)
