"""What a request asks, as plain text: the question the router judges and trimming ranks
passages against. Chat completions and Anthropic messages share the shape it reads."""

from __future__ import annotations

from typing import Any


def last_user_text(payload: dict[str, Any]) -> str:
    """The text of the last user message (its text parts joined by newlines), or ""."""
    for message in reversed(payload.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                texts = [p.get("text") for p in content if isinstance(p, dict)]
                return "\n".join(t for t in texts if isinstance(t, str))
    return ""
