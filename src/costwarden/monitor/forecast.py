"""Month-end spend forecasts per scope, and the day each monthly budget is hit at today's rate.

Method (all arithmetic in ``Decimal``; see docs/monitor.md "Forecast"):

* *spent*: ledger spend from the start of the month to ``now`` (or the whole month, once past).
* *rate*: the mean daily spend of the last ``LOOKBACK_DAYS`` complete days before ``now``,
  trimmed of its single highest and lowest day, so one spike (or one outage) does not swing
  the projection. Days with no request count as 0: they are real days without spend.
* *projection* = spent + rate × remaining days (fractional: the rest of today counts).
* *interval* (~90%): ± z · s · √(R + R²/n), with s the sample standard deviation of the n
  lookback days and R the remaining days: the spread of R independent future days (R·s²) plus
  the error of the estimated rate carried over R days (R²·s²/n). The low end is never below
  what is already spent.

Days start at midnight in the policy's timezone, as budget periods do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from costwarden.ledger.store import SpendRow, Store, check_dimensions
from costwarden.policy.budget_status import EffectiveBudget
from costwarden.policy.config import EACH

LOOKBACK_DAYS = 7
Z_90 = Decimal("1.645")  # two-sided 90% normal quantile
_DAY_US = Decimal(86_400_000_000)  # microseconds in a day: exact Decimal day fractions
_ZERO = Decimal(0)

GroupKey = tuple[str | None, ...]
CapStatus = Literal["reached", "projected", "not_this_period"]


@dataclass(frozen=True, slots=True)
class Month:
    """One calendar month in ``tz``; ``start``/``end`` as UTC instants (end exclusive)."""

    label: str  # "2026-12"
    start: datetime
    end: datetime
    tz: ZoneInfo


def month_of(label: str | None, now: datetime, tz: ZoneInfo) -> Month:
    """The month ``YYYY-MM`` (default: the one ``now`` falls in, in ``tz``)."""
    if label is None:
        local = now.astimezone(tz)
        year, month = local.year, local.month
    else:
        try:
            first = date.fromisoformat(f"{label}-01")
        except ValueError:
            raise ValueError(f"month must look like 2026-12, not {label!r}") from None
        year, month = first.year, first.month
    following = (year + 1, 1) if month == 12 else (year, month + 1)
    return Month(
        label=f"{year:04d}-{month:02d}",
        start=_local_midnight(date(year, month, 1), tz),
        end=_local_midnight(date(*following, 1), tz),
        tz=tz,
    )


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    # Converted to UTC at once: arithmetic between aware datetimes sharing a zoneinfo tzinfo
    # ignores DST changes, between UTC instants it is exact.
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Forecast:
    """Month-end spend of one group (``group`` maps each ``--by`` dimension to its value)."""

    group: dict[str, str | None]
    month: str
    spent: Decimal
    daily_rate: Decimal
    daily_spread: Decimal  # sample standard deviation of the lookback days
    remaining_days: Decimal
    projected: Decimal
    low: Decimal
    high: Decimal

    def to_dict(self) -> dict[str, Any]:
        money = ("spent", "daily_rate", "daily_spread", "projected", "low", "high")
        data: dict[str, Any] = {**self.group, "month": self.month}
        data |= {name: _text(getattr(self, name)) for name in money}
        data["remaining_days"] = _text(self.remaining_days)
        return data


@dataclass(frozen=True, slots=True)
class CapForecast:
    """When one monthly budget (for one group, if its scope says ``*``) is hit at the rate."""

    budget: str
    limit_usd: Decimal
    forecast: Forecast
    status: CapStatus
    hit_on: date | None  # the local date the cap is reached, when "projected"

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "limit_usd": _text(self.limit_usd),
            "status": self.status,
            "hit_on": self.hit_on.isoformat() if self.hit_on else None,
            "forecast": self.forecast.to_dict(),
        }


def _text(amount: Decimal) -> str:
    return format(amount, "f")


def robust_rate(days: Sequence[Decimal]) -> Decimal:
    """Mean daily spend without the single highest and lowest day (kept when fewer than 5)."""
    if not days:
        return _ZERO
    kept = sorted(days)[1:-1] if len(days) >= 5 else list(days)
    return sum(kept, _ZERO) / len(kept)


def daily_spread(days: Sequence[Decimal]) -> Decimal:
    """Sample standard deviation (0 for fewer than two days)."""
    if len(days) < 2:
        return _ZERO
    mean = sum(days, _ZERO) / len(days)
    variance = sum(((d - mean) ** 2 for d in days), _ZERO) / (len(days) - 1)
    return variance.sqrt()


def remaining_days(month: Month, now: datetime) -> Decimal:
    """Days (fractional) from ``now`` to the end of ``month``: 0 once past, all if ahead."""
    start = max(now, month.start)
    if start >= month.end:
        return _ZERO
    return Decimal((month.end - start) // timedelta(microseconds=1)) / _DAY_US


def project(
    group: dict[str, str | None],
    month: Month,
    spent: Decimal,
    days: Sequence[Decimal],
    now: datetime,
) -> Forecast:
    """The forecast of one group from its month-to-date spend and its lookback days."""
    left = remaining_days(month, now)
    rate, spread = robust_rate(days), daily_spread(days)
    projected = spent + rate * left
    half = Z_90 * spread * (left + left * left / len(days)).sqrt() if days else _ZERO
    return Forecast(
        group=group,
        month=month.label,
        spent=spent,
        daily_rate=rate,
        daily_spread=spread,
        remaining_days=left,
        projected=projected,
        low=max(spent, projected - half),
        high=projected + half,
    )


def lookback_windows(month: Month, now: datetime) -> list[tuple[datetime, datetime]]:
    """The ``LOOKBACK_DAYS`` complete local days before ``now`` (or before the month's end,
    once it is past), oldest first."""
    anchor = min(now, month.end).astimezone(month.tz).date()
    days = [anchor - timedelta(days=k) for k in range(LOOKBACK_DAYS, 0, -1)]
    return [
        (_local_midnight(d, month.tz), _local_midnight(d + timedelta(days=1), month.tz))
        for d in days
    ]


def _by_group(rows: Sequence[SpendRow], group_by: Sequence[str]) -> dict[GroupKey, Decimal]:
    return {tuple(row.group[g] for g in group_by): row.cost for row in rows}


async def forecast(
    store: Store,
    month: Month,
    now: datetime,
    group_by: Sequence[str] = (),
    filters: Mapping[str, str] | None = None,
) -> list[Forecast]:
    """One forecast per group seen this month or in the lookback days, most expensive first."""
    check_dimensions(group_by)
    until = min(now, month.end)
    spent: dict[GroupKey, Decimal] = {}
    if until > month.start:
        spent = _by_group(await store.spend(group_by, month.start, until, filters), group_by)
    daily = [
        _by_group(await store.spend(group_by, since, end, filters), group_by)
        for since, end in lookback_windows(month, now)
    ]
    keys = set(spent).union(*daily)
    if not group_by:
        keys.add(())  # the global forecast exists even on an empty ledger
    result = [
        project(
            dict(zip(group_by, key, strict=True)),
            month,
            spent.get(key, _ZERO),
            [day.get(key, _ZERO) for day in daily],
            now,
        )
        for key in keys
    ]
    result.sort(key=lambda f: (-f.projected, [(v is not None, v or "") for v in f.group.values()]))
    return result


def cap_hit(
    forecast: Forecast, label: str, limit: Decimal, month: Month, now: datetime
) -> CapForecast:
    """Whether and when ``limit`` is reached this month if spend goes on at the daily rate."""
    if forecast.spent >= limit:
        return CapForecast(label, limit, forecast, "reached", None)
    rate = forecast.daily_rate
    if rate <= 0 or (limit - forecast.spent) / rate >= forecast.remaining_days:
        return CapForecast(label, limit, forecast, "not_this_period", None)
    needed = (limit - forecast.spent) / rate * _DAY_US
    moment = max(now, month.start) + timedelta(microseconds=int(needed))
    return CapForecast(label, limit, forecast, "projected", moment.astimezone(month.tz).date())


async def budget_forecasts(
    store: Store, budgets: Sequence[EffectiveBudget], month: Month, now: datetime
) -> list[CapForecast]:
    """For each monthly budget: the cap-hit forecast of its scope (one per value of each
    ``*`` dimension). Budgets of other periods are left out: a month-end forecast says
    nothing about a daily or weekly cap."""
    result = []
    for budget in budgets:
        rule = budget.rule
        if rule.period != "month":
            continue
        filters = {str(dim): value for dim, value in rule.scope.items() if value != EACH}
        each = sorted(str(dim) for dim, value in rule.scope.items() if value == EACH)
        for item in await forecast(store, month, now, each, filters):
            # The fixed scope values belong in the group too: it names what the cap covers.
            scoped = replace(item, group={**filters, **item.group})
            result.append(cap_hit(scoped, rule.label(), rule.limit_usd, month, now))
    return result
