"""Usage records for ledger tests: realistic, distinct, with exact Decimal costs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from costwarden.records import (
    Attempt,
    Cost,
    Principal,
    Status,
    Tags,
    TokenUsage,
    UsageRecord,
    new_request_id,
)

BASE_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_record(
    index: int = 0,
    *,
    cost: Decimal | None = Decimal("0.000123"),
    user: str | None = "alice",
    team: str | None = "ml",
    model: str = "gpt-4o-mini",
    created_at: datetime | None = None,
    **fields: Any,
) -> UsageRecord:
    """Record number ``index``: one second after the previous one, fully populated."""
    usage = TokenUsage(input_tokens=100 + index, output_tokens=20, cache_read_tokens=10)
    attempt_cost = None
    if cost is not None:
        attempt_cost = Cost(cost, cost / 2, cost / 2, "genai-prices", "test-prices 1")
    attempt = Attempt(
        model=model,
        provider="openai",
        endpoint="ep-1",
        upstream_model=model,
        started_at=0.001,
        latency_ms=12.5,
        http_status=200,
        usage=usage,
        cost=attempt_cost,
        reported_model=f"{model}-2024-07-18",
    )
    created = created_at or BASE_TIME + timedelta(seconds=index)
    values: dict[str, Any] = {
        "request_id": new_request_id(),
        "created_at": created,
        "api": "chat.completions",
        "requested_model": model,
        "principal": Principal("key_test", user, team, "test key") if user or team else None,
        "tags": Tags(feature="search", session="s-1", env="prod", agent=None),
        "resolved_model": model,
        "provider": "openai",
        "upstream_model": model,
        "reported_model": f"{model}-2024-07-18",
        "usage": usage,
        "cost": cost,
        "cost_input": None if cost is None else cost / 2,
        "cost_output": None if cost is None else cost / 2,
        "price_source": "genai-prices",
        "price_version": "test-prices 1",
        "latency_ms": 15.25,
        "upstream_latency_ms": 12.5,
        "status": Status.OK,
        "http_status": 200,
        "attempts": [attempt],
        "finished_at": created + timedelta(milliseconds=15),
    }
    values.update(fields)
    return UsageRecord(**values)
