"""Reading a request to the fake upstream: route, JSON body, key, prompt size and limits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from costwarden.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES
from costwarden.providers.fake_common import PromptCount, content_texts, count_prompt

_ROUTES = (
    ("/chat/completions", CHAT),
    ("/completions", COMPLETIONS),
    ("/embeddings", EMBEDDINGS),
    ("/messages", MESSAGES),
)
_LEGACY_COMPLETION_MAX_TOKENS = 16  # OpenAI's default for /completions


class HTTPReplyError(Exception):
    """Answered with ``status`` and the provider's error body (empty message: its default
    text). Covers the fake's own 4xx for bad requests and every simulated failure."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def route(method: str, path: str, headers: Mapping[str, str]) -> tuple[str | None, bool]:
    """(api or None for non-API routes, whether to answer in Anthropic's shapes)."""
    anthropic = "anthropic-version" in headers
    if method == "POST":
        for suffix, api in _ROUTES:
            if path.endswith(suffix):
                return api, anthropic or api == MESSAGES
    return None, anthropic


def json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HTTPReplyError(f"We could not parse the JSON body of your request: {exc}") from exc
    if not isinstance(body, dict):
        raise HTTPReplyError("The request body must be a JSON object.")
    return body


def presented_keys(headers: Mapping[str, str]) -> set[str]:
    keys = {headers.get("api-key", ""), headers.get("x-api-key", "")}
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        keys.add(token)
    keys.discard("")
    return keys


def _int_field(body: Mapping[str, Any], *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise HTTPReplyError(f"'{name}' must be a positive integer")
            return value
    return None


def _messages(body: Mapping[str, Any]) -> list[Any]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise HTTPReplyError("'messages' must be a non-empty array")
    return messages


def prompt_and_limit(api: str, body: Mapping[str, Any]) -> tuple[PromptCount, int | None]:
    if api == CHAT:
        messages = _messages(body)
        texts = _message_texts(messages)
        return count_prompt(texts, len(messages)), _int_field(
            body, "max_completion_tokens", "max_tokens"
        )
    if api == MESSAGES:
        messages = _messages(body)
        limit = _int_field(body, "max_tokens")
        if limit is None:
            raise HTTPReplyError("max_tokens: Field required")
        texts = list(content_texts(body.get("system")))
        texts += _message_texts(messages)
        return count_prompt(texts, len(messages)), limit
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise HTTPReplyError("'prompt' must be a string or an array of strings")
    count = count_prompt(prompts, 0)
    count = PromptCount(max(count.tokens, 1), count.prefix_key)
    limit = _int_field(body, "max_tokens")
    return count, _LEGACY_COMPLETION_MAX_TOKENS if limit is None else limit


def _message_texts(messages: list[Any]) -> list[str]:
    return [t for m in messages if isinstance(m, dict) for t in content_texts(m.get("content"))]
