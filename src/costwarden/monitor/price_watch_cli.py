"""``costwarden prices check``: configured models whose price changed, and its cost per week."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from costwarden.config import Settings
from costwarden.ledger.store import Store
from costwarden.monitor.price_watch import PriceChange, price_changes
from costwarden.reports import format_money, parse_range


def add_prices_command(sub: Any, common: argparse.ArgumentParser) -> None:
    prices = sub.add_parser("prices", help="watch configured prices", parents=[common])
    prices_sub = prices.add_subparsers(dest="prices_command", required=True)
    check = prices_sub.add_parser(
        "check", help="models whose price changed since a moment", parents=[common]
    )
    check.add_argument("--since", default="7d", help="reference moment: 7d, 24h, or an ISO date")
    check.add_argument("--format", choices=("table", "json"), default="table")


async def prices_command(args: argparse.Namespace, store: Store, settings: Settings) -> int:
    now = datetime.now(UTC)
    reference = parse_range(args.since, now=now).since
    changes = await price_changes(settings, store, reference, now)
    if args.format == "json":
        document = {
            "reference": reference.isoformat(),
            "now": now.isoformat(),
            "changes": [change.to_dict() for change in changes],
        }
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    console = Console(width=None if sys.stdout.isatty() else 200)
    if not changes:
        console.print(f"No price changes since {reference:%Y-%m-%d %H:%M} UTC.")
        return 0
    console.print(_table(changes, f"Price changes since {reference:%Y-%m-%d %H:%M} UTC"))
    return 0


def _table(changes: list[PriceChange], title: str) -> Table:
    table = Table(title=title)
    table.add_column("model")
    table.add_column("old $/MTok")
    table.add_column("new $/MTok")
    table.add_column("effective from")
    table.add_column("impact / week", justify="right")
    for change in changes:
        start = change.effective_from
        table.add_row(
            change.model,
            change.old.describe(),
            change.new.describe(),
            "-" if start is None else f"{start:%Y-%m-%d %H:%M}",
            format_money(change.impact_per_week),
        )
    return table
