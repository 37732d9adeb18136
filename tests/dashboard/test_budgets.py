"""The budgets page against the forecast computed from the records themselves
(``monitor.forecast.budget_forecasts`` reads ``Store.spend``; the page reads the cube)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from costwarden.config import settings_from_dict
from costwarden.dashboard.budget_views import monthly_forecasts
from costwarden.ledger import Store
from costwarden.monitor.forecast import CapForecast, budget_forecasts, month_of
from costwarden.policy.budget_status import EffectiveBudget, effective_budgets
from costwarden.policy.config import BudgetRule
from tests.dashboard.dom import by_id, cells, parse, rows
from tests.dashboard.seed import BUDGETS, NOW, SEED_RECORDS, build_dashboard, call


def _scope(group: dict[str, str | None]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(group.items())) or "global"


async def test_forecasts_match_those_computed_from_the_records(seeded_store: Store) -> None:
    dashboard = build_dashboard(seeded_store)
    page = parse((await call(dashboard, "/dashboard/budgets")).text)
    budgets = effective_budgets(settings_from_dict({"policy": {"budgets": BUDGETS}}
                                                   ).policy.all_budgets(), ())
    month = month_of(None, NOW, ZoneInfo("UTC"))
    expected = await budget_forecasts(seeded_store, budgets, month, NOW)
    assert expected  # company + one per team
    by_budget: dict[str, dict[str, CapForecast]] = {}
    for cap in expected:
        by_budget.setdefault(cap.budget, {})[_scope(cap.forecast.group)] = cap
    for index, name in enumerate(("company", "per-team")):
        section = by_id(page, f"budget-{index}")
        assert section.attrs["data-budget"] == name
        shown = rows(page, f"forecast-{index}")
        assert {r.attrs["data-scope"] for r in shown} == set(by_budget[name])
        for row in shown:
            cap = by_budget[name][row.attrs["data-scope"]]
            values = cells(row)
            f = cap.forecast
            assert Decimal(values[1].attrs["data-spent"]) == f.spent
            assert Decimal(values[5].attrs["data-projected"]) == f.projected
            assert Decimal(values[6].attrs["data-low"]) == f.low
            assert Decimal(values[6].attrs["data-high"]) == f.high
            assert values[7].attrs["data-status"] == cap.status
            assert values[7].attrs["data-hit-on"] == (cap.hit_on.isoformat() if cap.hit_on else "")


async def test_company_spend_and_cap_date_by_hand(seeded_store: Store) -> None:
    """Month-to-date spend summed from the seed; the cap date from the page's own rate."""
    page = parse((await call(build_dashboard(seeded_store), "/dashboard/budgets")).text)
    (row,) = rows(page, "forecast-0")
    spent = sum((r.cost for r in SEED_RECORDS if r.cost is not None and r.created_at.month == 3),
                Decimal(0))
    values = cells(row)
    assert Decimal(values[1].attrs["data-spent"]) == spent
    rate = Decimal(values[4].attrs["data-rate"])
    # 100 - spent left at `rate` a day, counted from now (Mar 20 15:30 UTC).
    days_left = (Decimal(100) - spent) / rate
    assert values[7].attrs["data-status"] == "projected"
    expected_day = 20 + int(Decimal("15.5") / 24 + days_left)
    assert values[7].attrs["data-hit-on"] == date(2026, 3, expected_day).isoformat()


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
async def test_burn_down_is_the_cumulative_spend_per_local_day(
    seeded_store: Store, zone: str
) -> None:
    tz = ZoneInfo(zone)
    rule = BudgetRule(name="company", limit_usd=Decimal(100))
    (forecast,) = await monthly_forecasts(seeded_store, EffectiveBudget(rule, "config"), NOW, tz)
    burn = forecast.burn
    assert len(burn.days) == 31 and burn.days[0] == date(2026, 3, 1)
    today = NOW.astimezone(tz).date()
    assert len(burn.cumulative) == today.day
    for day, cumulative in zip(burn.days, burn.cumulative, strict=False):
        expected = sum(
            (r.cost for r in SEED_RECORDS if r.cost is not None
             and date(2026, 3, 1) <= r.created_at.astimezone(tz).date() <= day),
            Decimal(0),
        )
        assert cumulative == expected, day
    assert burn.cap == Decimal(100)
    month = month_of(None, NOW, tz)
    (reference,) = await budget_forecasts(
        seeded_store, (EffectiveBudget(rule, "config"),), month, NOW
    )
    assert forecast.cap == reference


async def test_other_periods_show_their_counters(seeded_store: Store) -> None:
    page = parse((await call(build_dashboard(seeded_store), "/dashboard/budgets")).text)
    daily = by_id(page, "budget-2")
    assert daily.attrs["data-budget"] == "daily-ml" and daily.attrs["data-period"] == "day"
    counter = next(c for c in daily.children if c.attrs.get("class") == "counter")
    assert Decimal(counter.attrs["data-spent"]) == 0  # nothing admitted through this engine
    assert "2026-03-20" in counter.text


async def test_no_budgets_says_so(seeded_store: Store) -> None:
    page = parse((await call(build_dashboard(seeded_store, budgets=[]), "/dashboard/budgets")
                  ).text)
    assert by_id(page, "no-budgets").text == "No budgets configured."
