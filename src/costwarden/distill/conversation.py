"""A request and its answer as one fine-tuning conversation.

OpenAI chat fine-tuning wants ``{"messages": [{"role": "system"|"user"|"assistant",
"content": text}, …]}`` ending with the assistant's answer. Chat completions and Anthropic
messages both fold into that: a ``developer`` message becomes ``system``, Anthropic's
``system`` field the first message, text parts and blocks are joined with newlines.

A conversation that is not plain text (images, audio, files, tool calls, tool results) is
not captured: rebuilding those faithfully as training data needs the tool definitions too, and
a half-kept example teaches the small model the wrong thing.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from costwarden.providers.base import CHAT, MESSAGES

Messages = list[dict[str, Any]]
ROLES = frozenset({"system", "user", "assistant"})
_ROLE_MAP = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
_SPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


class NotText(ValueError):
    """The request or answer holds something other than text."""


def _text_of(content: Any, text_type: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise NotText("content is neither text nor a list of parts")
    texts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != text_type:
            raise NotText("a content part that is not text")
        texts.append(str(part.get("text") or ""))
    return "\n".join(texts)


def _chat_messages(payload: dict[str, Any]) -> Messages:
    out: Messages = []
    for message in payload.get("messages") or []:
        if not isinstance(message, dict):
            raise NotText("a message is not an object")
        role = _ROLE_MAP.get(str(message.get("role")))
        if role is None or message.get("tool_calls") or message.get("function_call"):
            raise NotText(f"message role {message.get('role')!r} or a tool call")
        out.append({"role": role, "content": _text_of(message.get("content"), "text")})
    return out


def _anthropic_messages(payload: dict[str, Any]) -> Messages:
    out: Messages = []
    system = payload.get("system")
    if system:
        out.append({"role": "system", "content": _text_of(system, "text")})
    for message in payload.get("messages") or []:
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise NotText("an Anthropic message that is not a user or assistant turn")
        out.append({"role": message["role"], "content": _text_of(message.get("content"), "text")})
    return out


def _chat_answer(answer: dict[str, Any]) -> str:
    choices = answer.get("choices") or []
    if len(choices) != 1 or not isinstance(choices[0], dict):
        raise NotText("not exactly one choice")
    message = choices[0].get("message") or {}
    content = message.get("content")
    if message.get("tool_calls") or not isinstance(content, str):
        raise NotText("the answer is a tool call or has no text")
    return content


def _anthropic_answer(answer: dict[str, Any]) -> str:
    texts = []
    for block in answer.get("content") or []:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind not in ("thinking", "redacted_thinking"):  # reasoning is not the answer
            raise NotText(f"answer block of type {kind!r}")
    return "\n".join(texts)


def conversation(api: str, payload: dict[str, Any], answer: dict[str, Any]) -> Messages:
    """The fine-tuning messages of one request and its answer; raises ``NotText``."""
    if api == CHAT:
        messages, reply = _chat_messages(payload), _chat_answer(answer)
    elif api == MESSAGES:
        messages, reply = _anthropic_messages(payload), _anthropic_answer(answer)
    else:
        raise NotText(f"the {api} API has no conversation to learn from")
    if not any(m["role"] == "user" for m in messages) or not reply.strip():
        raise NotText("no user turn, or an empty answer")
    return [*messages, {"role": "assistant", "content": reply}]


def normalise(text: str) -> str:
    """Case, spacing and the values of numbers do not make two prompts different tasks."""
    return _SPACE.sub(" ", _NUMBER.sub("0", text.lower())).strip()


def prompt_text(messages: Messages) -> str:
    """Every turn before the final answer, one per line, as the fingerprint reads it."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages[:-1])


def prompt_hash(messages: Messages) -> str:
    """Fingerprint of the normalised prompt: equal for repeats of the same request."""
    digest = hashlib.blake2b(normalise(prompt_text(messages)).encode(), digest_size=16)
    return digest.hexdigest()
