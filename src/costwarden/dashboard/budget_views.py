"""The budgets page's numbers: what each budget has used, and where its monthly spend is headed.

The forecast is ``monitor/forecast.py``'s (``project`` and ``cap_hit``: trimmed 7-day rate,
~90 % interval, days in the policy timezone), fed from the cube instead of ``Store.spend`` so a
month of a large ledger is read in a few rollup queries rather than eight scans of its records.
In a timezone whose days are UTC days the whole days come from the day rollup; in any other the
hour rollup is bucketed by local day (exact for zones on whole-hour offsets).

Counters (spent + reserved, what admission checks) come from ``PolicyEngine.budget_status``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from costwarden.dashboard.charts import BurnDown
from costwarden.dashboard.params import Grain, floor_to
from costwarden.dashboard.queries import GroupKey, day_split
from costwarden.ledger.store import Store
from costwarden.monitor.forecast import (
    CapForecast,
    Month,
    cap_hit,
    lookback_windows,
    month_of,
    project,
)
from costwarden.policy.budget_status import BudgetStatus, EffectiveBudget
from costwarden.policy.config import EACH
from costwarden.policy.engine import PolicyEngine

_ZERO = Decimal(0)
_HOUR = timedelta(hours=1)
DailyCosts = dict[GroupKey, dict[date, Decimal]]


@dataclass(frozen=True, slots=True)
class ScopeForecast:
    """One monthly cap for one scope (one value of each ``*`` dimension)."""

    cap: CapForecast
    burn: BurnDown


@dataclass(frozen=True, slots=True)
class BudgetView:
    budget: EffectiveBudget
    status: BudgetStatus  # counters; without numbers when the rule needs a ``*`` value
    each: tuple[str, ...]  # the rule's ``*`` dimensions
    forecasts: tuple[ScopeForecast, ...]  # monthly rules only; highest projection first


def _utc_days(tz: ZoneInfo, moments: Sequence[datetime]) -> bool:
    return all(tz.utcoffset(m.replace(tzinfo=None)) == timedelta(0) for m in moments)


async def daily_costs(
    store: Store,
    each: Sequence[str],
    filters: dict[str, str],
    *,
    since: datetime,
    until: datetime,
    tz: ZoneInfo,
) -> DailyCosts:
    """Known cost per group (values of ``each``) per local day, over [since, until)."""
    since, until = floor_to(since, "hour"), floor_to(until - timedelta(microseconds=1), "hour")
    until += _HOUR
    parts: list[tuple[Grain, datetime, datetime]] = [("hour", since, until)]
    if _utc_days(tz, (since, until)):
        parts = day_split(since, until)
    result: DailyCosts = {}
    for grain, start, end in parts:
        for row in await store.cube(grain, ["start", *each], start, end, filters):
            text = row.group["start"]
            assert text is not None  # every cube row has a start
            day = datetime.fromisoformat(text).astimezone(tz).date()
            days = result.setdefault(tuple(row.group[d] for d in each), {})
            days[day] = days.get(day, _ZERO) + row.cost
    return result


def month_days(month: Month) -> list[date]:
    first = month.start.astimezone(month.tz).date()
    last = (month.end - timedelta(microseconds=1)).astimezone(month.tz).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _burn(days: list[date], costs: dict[date, Decimal], today: date, cap: CapForecast) -> BurnDown:
    cumulative: list[Decimal] = []
    running = _ZERO
    for day in days:
        if day > today:
            break
        running += costs.get(day, _ZERO)
        cumulative.append(running)
    f = cap.forecast
    return BurnDown(days, cumulative, cap.limit_usd, f.projected, f.low, f.high)


async def monthly_forecasts(
    store: Store, budget: EffectiveBudget, now: datetime, tz: ZoneInfo
) -> tuple[ScopeForecast, ...]:
    """``budget_forecasts`` for one monthly rule, from the cube, with its burn-down."""
    rule = budget.rule
    filters = {str(d): v for d, v in rule.scope.items() if v != EACH}
    each = sorted(str(d) for d, v in rule.scope.items() if v == EACH)
    month = month_of(None, now, tz)
    lookback = lookback_windows(month, now)
    costs = await daily_costs(
        store, each, filters, since=min(month.start, lookback[0][0]), until=now, tz=tz
    )
    if not each:
        costs.setdefault((), {})  # the global scope exists even with no spend
    days = month_days(month)
    today = now.astimezone(tz).date()
    lookback_days = [start.astimezone(tz).date() for start, _ in lookback]
    result = []
    for key, per_day in costs.items():
        spent = sum((v for d, v in per_day.items() if days[0] <= d <= today), _ZERO)
        forecast = project(
            {**filters, **dict(zip(each, key, strict=True))},
            month,
            spent,
            [per_day.get(d, _ZERO) for d in lookback_days],
            now,
        )
        cap = cap_hit(forecast, rule.label(), rule.limit_usd, month, now)
        result.append(ScopeForecast(cap, _burn(days, per_day, today, cap)))
    result.sort(key=lambda s: (-s.cap.forecast.projected, sorted(s.cap.forecast.group.items())))
    return tuple(result)


async def budget_views(
    store: Store, policy: PolicyEngine, now: datetime, tz: ZoneInfo
) -> list[BudgetView]:
    """Every effective budget with its counters and, if monthly, its forecasts."""
    budgets = policy.budgets
    # With no dimension values given, every rule resolves, so statuses align with budgets.
    statuses = await policy.budget_status({}, now.timestamp())
    views = []
    for budget, status in zip(budgets, statuses, strict=True):
        forecasts: tuple[ScopeForecast, ...] = ()
        if budget.rule.period == "month":
            forecasts = await monthly_forecasts(store, budget, now, tz)
        each = tuple(sorted(str(d) for d, v in budget.rule.scope.items() if v == EACH))
        views.append(BudgetView(budget, status, each, forecasts))
    return views
