"""What the semantic cache embeds of a request, and the scope it may hit in.

Embedded text: the *last message*, which must be the user's, as plain text:

- chat.completions: ``messages[-1]`` with ``role: "user"``; its ``content`` string, or the
  ``text`` of its content parts joined by newlines when every part is ``type: "text"``;
- messages (Anthropic): ``messages[-1]`` with ``role: "user"``; its ``content`` string, or the
  ``text`` of its blocks joined by newlines when every block is ``type: "text"``.

A request whose last message is not the user's (a tool result, an assistant prefill), holds
an image, audio or file part, or is longer than ``max_query_chars`` is not cacheable.

Scope (hashed; a candidate must match it exactly): the API, the model, the isolation value
(team by default), the environment tag, the system prompt (chat: every ``system`` /
``developer`` message; messages: ``system``), every *earlier* turn verbatim, and all other
body fields except ``stream``, ``stream_options``, ``user`` and ``metadata`` (so tools,
``response_format``, ``max_tokens``, ``temperature`` must match). A multi-turn conversation
therefore hits only when everything before its last question is the same.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from costwarden.providers.base import CHAT, MESSAGES
from costwarden.records import UsageRecord
from costwarden.savings.exact_cache import scope_of

_NOT_IN_SCOPE = frozenset(("stream", "stream_options", "user", "metadata", "messages", "system"))
_SYSTEM_ROLES = frozenset(("system", "developer"))


@dataclass(frozen=True, slots=True)
class CacheKey:
    scope: str  # hex digest of everything a hit must share
    text: str  # what is embedded and compared


def _plain_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        return None
    texts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text":
            return None
        text = part.get("text")
        if not isinstance(text, str):
            return None
        texts.append(text)
    return "\n".join(texts)


def _split_chat(messages: list[Any]) -> tuple[list[Any], list[Any]]:
    system = [m for m in messages[:-1] if isinstance(m, dict) and m.get("role") in _SYSTEM_ROLES]
    history = [
        m for m in messages[:-1] if not (isinstance(m, dict) and m.get("role") in _SYSTEM_ROLES)
    ]
    return system, history


def _parts(api: str, payload: dict[str, Any]) -> tuple[str, Any, list[Any]] | None:
    """(last user text, system prompt, earlier turns), or None when not cacheable."""
    messages = payload.get("messages")
    if api not in (CHAT, MESSAGES) or not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    text = _plain_text(last.get("content"))
    if text is None or not text.strip():
        return None
    if api == CHAT:
        system, history = _split_chat(messages)
        return text, system, history
    return text, payload.get("system"), messages[:-1]


def cache_key(
    api: str,
    model: str,
    payload: dict[str, Any],
    record: UsageRecord,
    *,
    isolation: str,
    max_query_chars: int,
) -> CacheKey | None:
    parts = _parts(api, payload)
    if parts is None or len(parts[0]) > max_query_chars:
        return None
    text, system, history = parts
    params = {k: v for k, v in payload.items() if k not in _NOT_IN_SCOPE}
    head = (api, model, scope_of(record, isolation), record.tags.env)
    canonical = orjson.dumps([head, system, history, params], option=orjson.OPT_SORT_KEYS)
    return CacheKey(hashlib.blake2b(canonical, digest_size=16).hexdigest(), text)
