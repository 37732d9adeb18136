"""Forecasts over a seeded ledger, on SQLite and on PostgreSQL: numbers computed by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from costwarden.ledger import Store, row_from_record
from costwarden.monitor.forecast import budget_forecasts, forecast, month_of
from costwarden.policy.budget_status import EffectiveBudget
from costwarden.policy.config import BudgetRule
from tests.ledger.factory import make_record

D = Decimal
NOW = datetime(2026, 3, 11, tzinfo=UTC)  # 10 days spent, 21 left
MONTH = month_of("2026-03", NOW, ZoneInfo("UTC"))
# team ml: $10 on each of Mar 1-3, then the lookback days Mar 4..10 with a spike on the last.
ML_LOOKBACK = [D(1), D(2), D(3), D(4), D(5), D(6), D(100)]


async def seed(store: Store) -> None:
    records = [
        make_record(day, cost=D(10), created_at=datetime(2026, 3, day, 9, tzinfo=UTC))
        for day in (1, 2, 3)
    ]
    for offset, cost in enumerate(ML_LOOKBACK):
        at = datetime(2026, 3, 4 + offset, 13, tzinfo=UTC)
        # two requests a day, so the daily sums are sums, not single rows
        records += [
            make_record(i, cost=cost / 2, created_at=at) for i in (10 + offset, 20 + offset)
        ]
    records.append(
        make_record(40, cost=D(7), team="web", created_at=datetime(2026, 3, 10, tzinfo=UTC))
    )
    # outside the month and after now: never counted
    records.append(make_record(41, cost=D(999), created_at=datetime(2026, 2, 20, tzinfo=UTC)))
    records.append(make_record(42, cost=D(999), created_at=datetime(2026, 3, 11, 1, tzinfo=UTC)))
    await store.insert_rows([row_from_record(r) for r in records])


def spread(days: list[Decimal]) -> Decimal:
    mean = sum(days, D(0)) / len(days)
    return (sum(((d - mean) ** 2 for d in days), D(0)) / (len(days) - 1)).sqrt()


async def test_global_forecast_matches_hand_computation(ledger_store: Store) -> None:
    await seed(ledger_store)
    (item,) = await forecast(ledger_store, MONTH, NOW)
    assert item.group == {}
    assert item.spent == D(30) + D(121) + D(7)
    assert item.daily_rate == D(4)  # (2+3+4+5+6)/5: the $1 dip and the $107 spike dropped
    assert item.remaining_days == 21
    assert item.projected == D(158) + 21 * D(4)
    days = [*ML_LOOKBACK[:-1], D(107)]
    half = D("1.645") * spread(days) * (D(21) + D(441) / 7).sqrt()
    assert item.high == D(242) + half
    assert item.low == max(D(158), D(242) - half)


async def test_forecast_by_team(ledger_store: Store) -> None:
    await seed(ledger_store)
    ml, web = await forecast(ledger_store, MONTH, NOW, ["team"])
    assert (ml.group, ml.spent, ml.projected) == ({"team": "ml"}, D(151), D(235))
    assert (web.group, web.spent, web.daily_rate, web.projected) == ({"team": "web"}, D(7), 0, D(7))
    only_web = await forecast(ledger_store, MONTH, NOW, ["team"], {"team": "web"})
    assert only_web == [web]


async def test_cap_hit_dates_per_budget(ledger_store: Store) -> None:
    await seed(ledger_store)
    rules = [
        BudgetRule(name="all", limit_usd=D(200)),  # (200-158)/4 = 10.5 days → Mar 21, noon
        BudgetRule(name="each-team", scope={"team": "*"}, limit_usd=D(160)),
        BudgetRule(name="ml", scope={"team": "ml"}, limit_usd=D(150)),
        BudgetRule(name="weekly", period="week", limit_usd=D(1)),  # not a month: left out
    ]
    budgets = [EffectiveBudget(rule, "config") for rule in rules]
    caps = await budget_forecasts(ledger_store, budgets, MONTH, NOW)
    found = {(c.budget, c.forecast.group.get("team")): (c.status, c.hit_on) for c in caps}
    assert found == {
        ("all", None): ("projected", date(2026, 3, 21)),
        ("each-team", "ml"): ("projected", date(2026, 3, 13)),  # (160-151)/4 = 2.25 days
        ("each-team", "web"): ("not_this_period", None),  # no spend in the trimmed rate
        ("ml", "ml"): ("reached", None),
    }


async def test_past_month_is_its_actual_spend(ledger_store: Store) -> None:
    await seed(ledger_store)
    after = datetime(2026, 4, 15, tzinfo=UTC)
    (item,) = await forecast(ledger_store, month_of("2026-03", after, ZoneInfo("UTC")), after)
    assert item.spent == item.projected == item.low == item.high == D(158) + D(999)
    assert item.remaining_days == 0
