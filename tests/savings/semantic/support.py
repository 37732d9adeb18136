"""Shared pieces of the semantic cache tests: one real MiniLM pool per module, keys, a clock."""

from __future__ import annotations

from typing import Any

from costwarden.records import Principal, UsageRecord, utcnow
from costwarden.savings.semantic.request import CacheKey, cache_key


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def record(team: str = "ml", user: str = "alice") -> UsageRecord:
    return UsageRecord(
        request_id="r-1",
        created_at=utcnow(),
        api="chat.completions",
        requested_model="gpt-4o",
        principal=Principal(key_id=f"k-{user}", user=user, team=team),
    )


def chat(
    question: str, *, system: str | None = None, history: list[Any] | None = None
) -> dict[str, Any]:
    messages: list[Any] = [{"role": "system", "content": system}] if system else []
    messages += history or []
    messages.append({"role": "user", "content": question})
    return {"model": "gpt-4o", "messages": messages}


def key(
    question: str,
    *,
    model: str = "gpt-4o",
    team: str = "ml",
    system: str | None = None,
    history: list[Any] | None = None,
) -> CacheKey:
    made = cache_key(
        "chat.completions",
        model,
        chat(question, system=system, history=history),
        record(team),
        isolation="team",
        max_query_chars=1000,
    )
    assert made is not None
    return made
