"""Alerts: one type, one router with deduplication and cool-down, and the policy-event adapter.

Everything that raises an alarm (budget thresholds, breaker trips, pin mismatches, and later
anomalies) builds an ``Alert`` and hands it to the ``AlertRouter``, so cool-down and delivery
behave the same whatever the source. ``AlertRouter.emit`` is synchronous and non-blocking: the
policy engine calls it on the request path.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Protocol

from costwarden.policy.events import BreakerEvent, BudgetEvent, PinEvent, PolicyEvent

log = logging.getLogger("costwarden.alerts")

Severity = Literal["info", "warning", "critical"]
# Past this many remembered keys, expired ones are pruned (keeps memory bounded under key churn).
_PRUNE_AT = 10_000


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str  # e.g. "budget.threshold", "breaker.open", "pin.mismatch"
    severity: Severity
    title: str
    text: str
    scope: str  # what it is about: a budget counter, a session, a model
    dedup_key: str  # the same key inside the cool-down is one alert, not many
    fields: Mapping[str, str] = field(default_factory=dict)
    at: float = 0.0  # wall-clock seconds of the underlying event


class AlertSink(Protocol):
    def start(self) -> None: ...

    def emit(self, alert: Alert) -> None: ...

    async def close(self) -> None: ...


class AlertRouter:
    """Suppresses repeats of a dedup key inside ``cooldown_s`` and fans the rest out to sinks.

    A repeat is counted, and the next alert for that key after the cool-down carries the count,
    so a reader knows the condition kept firing while it was quiet.
    """

    def __init__(
        self,
        sinks: Sequence[AlertSink],
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sinks = tuple(sinks)
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._last_sent: dict[str, float] = {}
        self._pending: Counter[str] = Counter()  # suppressed since the key's last delivery
        self.sent = 0
        self.suppressed = 0

    def start(self) -> None:
        for sink in self._sinks:
            sink.start()

    def emit(self, alert: Alert) -> bool:
        """Deliver ``alert`` unless its key is cooling down; True when it went to the sinks."""
        now = self._clock()
        key = alert.dedup_key
        last = self._last_sent.get(key)
        if last is not None and now - last < self._cooldown_s:
            self._pending[key] += 1
            self.suppressed += 1
            return False
        if len(self._last_sent) >= _PRUNE_AT:
            self._prune(now)
        self._last_sent[key] = now
        repeats = self._pending.pop(key, 0)
        if repeats:
            fields = {**alert.fields, "suppressed repeats": str(repeats)}
            alert = dataclasses.replace(alert, fields=fields)
        self.sent += 1
        for sink in self._sinks:
            try:
                sink.emit(alert)
            except Exception:
                # An alerting fault must never fail the request whose event triggered it.
                log.exception("alert sink %s failed", type(sink).__name__)
        return True

    def _prune(self, now: float) -> None:
        expired = [k for k, t in self._last_sent.items() if now - t >= self._cooldown_s]
        for key in expired:
            del self._last_sent[key]

    async def close(self) -> None:
        for sink in self._sinks:
            await sink.close()


def _usd(amount: Decimal) -> str:
    return f"${amount.quantize(Decimal('0.01'))}"


def budget_alert(event: BudgetEvent) -> Alert:
    spent, limit = _usd(event.spent_usd), _usd(event.limit_usd)
    fields = {"budget": event.budget, "spent": spent, "limit": limit}
    if event.resets_at is not None:
        fields["resets at"] = event.resets_at
    if event.kind == "exhausted":
        return Alert(
            kind="budget.exhausted",
            severity="critical",
            title=f"Budget {event.budget} exhausted",
            text=f"Spent {spent} of {limit}; requests under it are now refused.",
            scope=event.scope_key,
            dedup_key=f"budget.exhausted:{event.scope_key}",
            fields=fields,
            at=event.at,
        )
    pct = event.threshold_pct
    fields["threshold"] = f"{pct}%"
    return Alert(
        kind="budget.threshold",
        severity="warning",
        title=f"Budget {event.budget} passed {pct}%",
        text=f"Spent {spent} of {limit} ({pct}% threshold crossed).",
        scope=event.scope_key,
        # The scope key names the period, so next month's crossing is a new alert.
        dedup_key=f"budget.threshold:{event.scope_key}:{pct}",
        fields=fields,
        at=event.at,
    )


def breaker_alert(event: BreakerEvent) -> Alert:
    severity: Severity = "warning" if event.state == "open" else "info"
    fields = {str(k): str(v) for k, v in event.details.items() if v is not None}
    return Alert(
        kind=f"breaker.{event.state}",
        severity=severity,
        title=f"Breaker {event.breaker} {event.state.replace('_', '-')}",
        text=f"The {event.breaker} breaker for {event.subject} is now {event.state}.",
        scope=event.subject,
        dedup_key=f"breaker:{event.breaker}:{event.subject}:{event.state}",
        fields=fields,
        at=event.at,
    )


def pin_alert(event: PinEvent) -> Alert:
    return Alert(
        kind="pin.mismatch",
        severity="warning",
        title=f"Model {event.requested} answered as {event.reported}",
        text=(
            f"Requests for {event.requested} are pinned to {event.expected}, "
            f"but upstream reported {event.reported}: a floating alias may have moved."
        ),
        scope=event.requested,
        dedup_key=f"pin:{event.requested}:{event.reported}",
        fields={"expected": event.expected, "reported": event.reported},
        at=event.at,
    )


def alert_from_event(event: PolicyEvent) -> Alert:
    if isinstance(event, BudgetEvent):
        return budget_alert(event)
    if isinstance(event, BreakerEvent):
        return breaker_alert(event)
    return pin_alert(event)


class PolicyAlertSink:
    """The policy engine's ``EventSink`` that turns its events into alerts on the same path."""

    def __init__(self, router: AlertRouter) -> None:
        self._router = router

    def emit(self, event: PolicyEvent) -> None:
        self._router.emit(alert_from_event(event))
