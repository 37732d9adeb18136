"""Events the policy engine reports: budget thresholds, breaker trips, pin mismatches.

Sinks are synchronous and must not block (the engine calls them on the request path); a sink
that ships events elsewhere should queue them. Each budget threshold crossing is computed from
one atomic settlement, so across all replicas exactly one request reports it.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol

from costwarden.state.base import Refusal


@dataclass(frozen=True, slots=True)
class BudgetEvent:
    """A budget crossed a soft threshold (``kind="threshold"``) or first refused a request."""

    kind: Literal["threshold", "exhausted"]
    budget: str  # the rule's label
    scope_key: str  # the counter, e.g. "budget:team=ml:month:2026-11"
    limit_usd: Decimal
    spent_usd: Decimal
    threshold_pct: int | None  # for kind="threshold"
    resets_at: str | None  # ISO 8601; None for lifetime budgets
    at: float


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """A breaker changed state; ``breaker`` names which (loop, max_steps, max_spend, velocity)."""

    breaker: str
    state: Literal["open", "half_open", "closed"]
    subject: str  # the session or key it applies to
    at: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PinEvent:
    """Upstream reported a different model than the pinned one (a floating alias moved)."""

    requested: str
    expected: str
    reported: str
    at: float


PolicyEvent = BudgetEvent | BreakerEvent | PinEvent

BREAKER_NAMES = {
    Refusal.LOOP: "loop",
    Refusal.MAX_STEPS: "max_steps",
    Refusal.VELOCITY_OPEN: "velocity",
    Refusal.PROBE_BUSY: "velocity",
}


class EventSink(Protocol):
    def emit(self, event: PolicyEvent) -> None: ...


class LoggingEventSink:
    """Default sink: one log line per event (warning for trips and exhaustion)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("costwarden.policy")

    def emit(self, event: PolicyEvent) -> None:
        alarming = (
            isinstance(event, PinEvent)
            or (isinstance(event, BudgetEvent) and event.kind == "exhausted")
            or (isinstance(event, BreakerEvent) and event.state == "open")
        )
        self._log.log(logging.WARNING if alarming else logging.INFO, "policy event: %s", event)


class MemoryEventSink:
    """Keeps the most recent events in memory (admin API "recent events", tests)."""

    def __init__(self, max_events: int = 1000) -> None:
        self.events: deque[PolicyEvent] = deque(maxlen=max_events)

    def emit(self, event: PolicyEvent) -> None:
        self.events.append(event)


class FanoutEventSink:
    def __init__(self, *sinks: EventSink) -> None:
        self._sinks = sinks

    def emit(self, event: PolicyEvent) -> None:
        for sink in self._sinks:
            sink.emit(event)
