"""``costwarden forecast``: month-end spend per scope, and when each monthly budget is hit.

    costwarden forecast [--by team] [--month 2026-12] [--format table|json]

Budgets are the effective set (config, with run-time budgets from the ledger replacing
same-named ones), as admission sees them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from rich.console import Console
from rich.table import Table

from costwarden.config import Settings
from costwarden.ledger.store import Store
from costwarden.monitor.forecast import (
    CapForecast,
    Forecast,
    budget_forecasts,
    forecast,
    month_of,
)
from costwarden.policy.budget_status import effective_budgets, runtime_rules
from costwarden.reports import format_money

FORECAST_GROUPS = ("team", "user", "model", "feature", "key", "env", "provider")


def add_forecast_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    forecast_parser = sub.add_parser(
        "forecast", help="month-end spend and budget cap dates", parents=[common]
    )
    forecast_parser.add_argument(
        "--by", default="", help=f"comma list of {', '.join(FORECAST_GROUPS)} (default: global)"
    )
    forecast_parser.add_argument("--month", help="YYYY-MM (default: this month)")
    forecast_parser.add_argument("--format", choices=("table", "json"), default="table")


async def forecast_command(
    args: argparse.Namespace, store: Store, settings: Settings, now: datetime | None = None
) -> int:
    group_by = [g for g in args.by.split(",") if g]
    bad = [g for g in group_by if g not in FORECAST_GROUPS]
    if bad:
        print(
            f"cannot forecast by {bad}; choose from {', '.join(FORECAST_GROUPS)}", file=sys.stderr
        )
        return 2
    now = now or datetime.now(UTC)
    month = month_of(args.month, now, ZoneInfo(settings.policy.timezone))
    budgets = effective_budgets(
        settings.policy.all_budgets(), runtime_rules(await store.list_budget_rules())
    )
    forecasts = await forecast(store, month, now, group_by)
    caps = await budget_forecasts(store, budgets, month, now)
    if args.format == "json":
        data = {
            "month": month.label,
            "timezone": settings.policy.timezone,
            "forecasts": [f.to_dict() for f in forecasts],
            "budgets": [c.to_dict() for c in caps],
        }
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(forecast_table(forecasts, group_by, month.label))
    if caps:
        console.print(caps_table(caps))
    return 0


def forecast_table(forecasts: Sequence[Forecast], group_by: Sequence[str], month: str) -> Table:
    table = Table(title=f"Spend forecast for {month} (90% interval)")
    for name in group_by or ["scope"]:
        table.add_column(name)
    for header in ("spent", "per day", "days left", "month end", "low", "high"):
        table.add_column(header, justify="right")
    for item in forecasts:
        names = [item.group[g] or "-" for g in group_by] if group_by else ["global"]
        table.add_row(
            *names,
            format_money(item.spent),
            format_money(item.daily_rate),
            f"{item.remaining_days:.1f}",
            format_money(item.projected),
            format_money(item.low),
            format_money(item.high),
        )
    return table


def caps_table(caps: Sequence[CapForecast]) -> Table:
    table = Table(title="Monthly budgets at the current rate")
    for header in ("budget", "scope", "limit", "month end", "cap hit"):
        table.add_column(header, justify="right" if header in ("limit", "month end") else "left")
    for cap in caps:
        scope = ",".join(f"{k}={v}" for k, v in cap.forecast.group.items()) or "-"
        when = {"reached": "already reached", "not_this_period": "not this period"}
        table.add_row(
            cap.budget,
            scope,
            format_money(cap.limit_usd),
            format_money(cap.forecast.projected),
            cap.hit_on.isoformat() if cap.hit_on else when[cap.status],
        )
    return table
