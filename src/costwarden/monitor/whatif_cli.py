"""``costwarden whatif``: the period's recorded usage re-priced under a scenario (``whatif``)."""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from costwarden.config import Settings
from costwarden.ledger.store import Store
from costwarden.monitor.whatif import (
    Scenario,
    ScenarioPricer,
    WhatIfRow,
    parse_model_map,
    parse_where,
    what_if,
)
from costwarden.reports import format_money, parse_range


def add_whatif_command(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "whatif", help="re-price recorded usage under another model map or price", parents=[common]
    )
    parser.add_argument("--map", action="append", default=[], metavar="MODEL=OTHER")
    parser.add_argument("--where", action="append", default=[], metavar="DIMENSION=VALUE")
    parser.add_argument("--discount-pct", type=Decimal, default=Decimal(0))
    parser.add_argument("--by", default="model", help="comma list of report dimensions")
    parser.add_argument("--since", default="30d")
    parser.add_argument("--until")
    parser.add_argument("--format", choices=("table", "json"), default="table")


async def whatif_command(args: argparse.Namespace, store: Store, settings: Settings) -> int:
    scenario = Scenario(parse_model_map(args.map), parse_where(args.where), args.discount_pct)
    by = [d for d in args.by.split(",") if d]
    span = parse_range(args.since, args.until)
    rows = await what_if(store, ScenarioPricer(settings), scenario, by, span)
    if args.format == "json":
        document = {"rows": [r.to_dict() for r in rows], "total": _total(rows, by).to_dict()}
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(_table(rows, by, _title(args)))
    return 0


def _total(rows: list[WhatIfRow], by: list[str]) -> WhatIfRow:
    total = WhatIfRow(dict.fromkeys(by, "total"))
    for row in rows:
        total.requests += row.requests
        total.actual += row.actual
        total.scenario += row.scenario
        total.unpriced += row.unpriced
    return total


def _title(args: argparse.Namespace) -> str:
    parts = [f"{k} → {v}" for k, v in parse_model_map(args.map).items()]
    if args.discount_pct:
        parts.append(f"−{args.discount_pct} %")
    scope = " where " + ", ".join(args.where) if args.where else ""
    return f"What if: {', '.join(parts) or 'nothing changed'}{scope}"


def _table(rows: list[WhatIfRow], by: list[str], title: str) -> Table:
    table = Table(title=title)
    for name in by:
        table.add_column(name)
    for name in ("requests", "actual", "what if", "difference", "change", "unpriced"):
        table.add_column(name, justify="right")
    for index, row in enumerate([*rows, _total(rows, by)]):
        if index == len(rows):
            table.add_section()
        change = f"{row.difference / row.actual * 100:+.1f} %" if row.actual else "-"
        table.add_row(
            *[str(row.group[d] or "-") for d in by],
            str(row.requests),
            format_money(row.actual),
            format_money(row.scenario),
            format_money(row.difference),
            change,
            str(row.unpriced),
        )
    return table
