"""Budget rules → the capped counters a request reserves on, and the errors and events they give.

A counter is named by what it counts and when: ``budget:team=ml,model=gpt-4o:month:2026-11``.
A new period is a new key, so nothing has to reset budgets; old keys expire a while after their
period ends (kept ``COUNTER_RETENTION`` for reports). Rules that name the same counter (same
scope and period) share it, and the smallest limit wins.

Refusals use HTTP 429 (the hierarchy's status for policy rejections) with ``x-should-retry:
false`` when the budget is spent until its reset, so the OpenAI / Anthropic SDKs do not retry a
refusal that cannot succeed; when only in-flight reservations block the request, the SDKs may
retry after ``Retry-After``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

from costwarden.errors import BudgetExceeded
from costwarden.policy.config import EACH, BudgetRule, Period
from costwarden.policy.events import BudgetEvent
from costwarden.state.base import ScopeKey, ScopeSettlement, ScopeUsage

_Dim = TypeVar("_Dim", bound=str)
COUNTER_RETENTION = timedelta(days=35)
_PLAIN = re.compile(r"[A-Za-z0-9_.\-]*")
TRANSIENT_RETRY_S = 1  # only in-flight reservations block: they settle within a request's time


def scope_label(scope: Mapping[_Dim, str], dimensions: dict[str, str | None]) -> str | None:
    """The counter name part for a request (``team=ml,user=bob``), or None if the rule does not
    apply to it. Values are percent-encoded so that no value can forge another scope's name."""
    parts = []
    for dimension in sorted(scope):
        wanted, actual = scope[dimension], dimensions.get(dimension)
        if actual is None or wanted not in (EACH, actual):
            return None
        parts.append(f"{dimension}={escape(actual)}")
    return ",".join(parts) or "global"


def escape(value: str) -> str:
    """``value`` percent-encoded for a counter name; the same as ``quote(value, safe="")``,
    whose ~2 µs a call is spent only on the rare id that needs escaping at all."""
    return value if _PLAIN.fullmatch(value) else quote(value, safe="")


@dataclass(frozen=True, slots=True)
class PeriodWindow:
    label: str  # "2026-11-24", "2026-W48", "2026-11", "lifetime"
    resets_at: datetime | None  # start of the next period (aware, in the policy timezone)
    starts_at: datetime | None = None  # start of this period (None for lifetime)


class PeriodCache:
    """Current period windows, recomputed only when the clock leaves them.

    Working out a calendar period (timezone conversion, strftime) costs ~20 µs; a request
    checks several budgets, and the answer changes once a day at most.
    """

    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz
        self._windows: dict[str, tuple[float, float, PeriodWindow]] = {}

    def window(self, period: Period, now: float) -> PeriodWindow:
        return self.bounds(period, now)[2]

    def bounds(self, period: Period, now: float) -> tuple[float, float, PeriodWindow]:
        """(start, end, window) of the period ``now`` is in; start <= now < end, as epoch s."""
        hit = self._windows.get(period)
        if hit is not None and hit[0] <= now < hit[1]:
            return hit
        window = current_period(period, now, self._tz)
        start = window.starts_at.timestamp() if window.starts_at else -math.inf
        end = window.resets_at.timestamp() if window.resets_at else math.inf
        hit = self._windows[period] = (start, end, window)
        return hit


def current_period(period: Period, now: float, tz: ZoneInfo) -> PeriodWindow:
    local = datetime.fromtimestamp(now, tz)
    if period == "lifetime":
        return PeriodWindow("lifetime", None)
    if period == "day":
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return PeriodWindow(start.strftime("%Y-%m-%d"), _next_local(start, days=1, tz=tz), start)
    if period == "week":
        monday = (local - timedelta(days=local.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        year, week, _ = monday.isocalendar()
        return PeriodWindow(f"{year}-W{week:02d}", _next_local(monday, days=7, tz=tz), monday)
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first.replace(tzinfo=None) + timedelta(days=32)).replace(day=1)
    return PeriodWindow(first.strftime("%Y-%m"), following.replace(tzinfo=tz), first)


def _next_local(start: datetime, *, days: int, tz: ZoneInfo) -> datetime:
    # Wall-clock arithmetic: a day is midnight to midnight even across a DST change.
    naive = start.replace(tzinfo=None) + timedelta(days=days)
    return naive.replace(tzinfo=tz)


@dataclass(frozen=True, slots=True)
class BudgetScope:
    """One budget that applies to one request."""

    label: str  # the rule's label, for messages and events
    counter: ScopeKey
    thresholds: tuple[int, ...]
    resets_at: datetime | None


@dataclass(frozen=True, slots=True)
class CompiledBudgets:
    """The budgets of one set of dimension values, valid while ``valid_from <= now <
    valid_until`` (every period window they were named for is still current)."""

    scopes: tuple[BudgetScope, ...]
    valid_from: float
    valid_until: float


def budget_scopes(
    rules: tuple[BudgetRule, ...],
    dimensions: dict[str, str | None],
    now: float,
    tz: ZoneInfo,
    *,
    periods: PeriodCache | None = None,
) -> list[BudgetScope]:
    compiled = compile_budgets(rules, dimensions, now, periods or PeriodCache(tz))
    return list(compiled.scopes)


def compile_budgets(
    rules: tuple[BudgetRule, ...],
    dimensions: dict[str, str | None],
    now: float,
    periods: PeriodCache,
) -> CompiledBudgets:
    by_key: dict[str, BudgetScope] = {}
    valid_from, valid_until = -math.inf, math.inf
    for rule in rules:
        label = scope_label(rule.scope, dimensions)
        if label is None:
            continue
        start, end, window = periods.bounds(rule.period, now)
        valid_from, valid_until = max(valid_from, start), min(valid_until, end)
        key = f"budget:{label}:{rule.period}:{window.label}"
        expires = None
        if window.resets_at is not None:
            expires = (window.resets_at + COUNTER_RETENTION).timestamp()
        scope = BudgetScope(
            rule.label(),
            ScopeKey(key, rule.limit_usd, expires, min(rule.soft_thresholds, default=None)),
            rule.soft_thresholds,
            window.resets_at,
        )
        known = by_key.get(key)
        if known is None or scope.counter.cap < known.counter.cap:
            by_key[key] = scope
    return CompiledBudgets(tuple(by_key.values()), valid_from, valid_until)


def plain(amount: Decimal) -> str:
    """A decimal for JSON: fixed-point and without trailing zeros ("0", not "0E-8")."""
    return format(amount.normalize(), "f")


def budget_exceeded(
    scope: BudgetScope, usage: ScopeUsage, amount: Decimal, now: float
) -> BudgetExceeded:
    transient = usage.reserved > 0 and usage.spent + amount <= usage.cap
    resets = scope.resets_at.isoformat() if scope.resets_at else None
    if transient:
        why = "in-flight requests hold the rest; retry shortly"
    elif resets:
        why = f"resets at {resets}"
    else:
        why = "lifetime budget, it does not reset"
    message = (
        f"budget {scope.label!r} exceeded: spent {usd(usage.spent)} + reserved "
        f"{usd(usage.reserved)} of {usd(usage.cap)} limit, {usd(usage.remaining)} remaining; "
        f"this request may cost up to {usd(amount)}; {why}"
    )
    headers = {"x-should-retry": "true" if transient else "false"}
    if transient:
        headers["retry-after"] = str(TRANSIENT_RETRY_S)
    elif scope.resets_at is not None:
        headers["retry-after"] = str(max(1, math.ceil(scope.resets_at.timestamp() - now)))
    details = {
        "budget": scope.label,
        "scope_key": scope.counter.key,
        "limit_usd": plain(usage.cap),
        "spent_usd": plain(usage.spent),
        "reserved_usd": plain(usage.reserved),
        "remaining_usd": plain(usage.remaining),
        "request_max_cost_usd": plain(amount),
        "resets_at": resets,
    }
    return BudgetExceeded(message, headers=headers, details=details)


def threshold_events(scope: BudgetScope, settled: ScopeSettlement, at: float) -> list[BudgetEvent]:
    """Soft thresholds this settlement crossed (spent went from below to at-or-above)."""
    if not scope.thresholds or (
        settled.spent_after_units * 100 < settled.cap_units * min(scope.thresholds)
    ):
        return []  # the usual case, settled well below every threshold: no Decimal work
    events = []
    for pct in scope.thresholds:
        # spent_before < cap * pct / 100 <= spent_after, exactly, in integer units
        mark = settled.cap_units * pct
        if settled.spent_before_units * 100 < mark <= settled.spent_after_units * 100:
            events.append(
                BudgetEvent(
                    kind="threshold",
                    budget=scope.label,
                    scope_key=scope.counter.key,
                    limit_usd=settled.cap,
                    spent_usd=settled.spent_after,
                    threshold_pct=pct,
                    resets_at=scope.resets_at.isoformat() if scope.resets_at else None,
                    at=at,
                )
            )
    return events


def exhausted_event(scope: BudgetScope, usage: ScopeUsage, at: float) -> BudgetEvent:
    return BudgetEvent(
        kind="exhausted",
        budget=scope.label,
        scope_key=scope.counter.key,
        limit_usd=usage.cap,
        spent_usd=usage.spent,
        threshold_pct=None,
        resets_at=scope.resets_at.isoformat() if scope.resets_at else None,
        at=at,
    )


def usd(amount: Decimal) -> str:
    """Money for messages: dollars with up to 6 decimals, trailing zeros trimmed to cents."""
    text = f"{amount.quantize(Decimal('0.000001')):f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"
