"""``costwarden budgets``: budgets managed at run time, written straight to the ledger database.

    costwarden budgets list [--format table|json]
    costwarden budgets set NAME --limit-usd 50 [--period month] [--scope user=alice ...]
                               [--thresholds 50,80,100]
    costwarden budgets delete NAME

Running gateways that share the database pick a change up within ``policy.budget_refresh_s``.
Budgets from the config file are not listed here (they live in the file); the admin API's
``GET /admin/budgets`` shows both.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation
from typing import Any, get_args

import orjson

from costwarden.ledger.store import Store
from costwarden.policy.config import BudgetRule, Period
from costwarden.policy.runtime import runtime_rule


def add_budget_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    budgets = subparsers.add_parser(
        "budgets", help="manage budgets at run time (stored in the ledger)", parents=[common]
    )
    sub = budgets.add_subparsers(dest="budgets_command", required=True)
    listing = sub.add_parser("list", help="budgets stored at run time", parents=[common])
    listing.add_argument("--format", choices=("table", "json"), default="table")

    setting = sub.add_parser("set", help="create or replace a budget", parents=[common])
    setting.add_argument("name")
    setting.add_argument("--limit-usd", required=True, type=_decimal, help="e.g. 50 or 0.25")
    setting.add_argument("--period", choices=get_args(Period), default="month")
    setting.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="DIM=VALUE",
        help="user/team/key/feature/env/model = a value or '*' (each value); repeatable; "
        "none: global",
    )
    setting.add_argument(
        "--thresholds", type=_percentages, help="soft-threshold percents, e.g. 50,80,100"
    )

    deleting = sub.add_parser("delete", help="remove a budget set at run time", parents=[common])
    deleting.add_argument("name")


async def budgets_command(args: argparse.Namespace, store: Store) -> int:
    if args.budgets_command == "list":
        return await _list(store, args.format)
    if args.budgets_command == "set":
        return await _set(store, args)
    if await store.delete_budget_rule(args.name):
        print(f"deleted budget {args.name}")
        return 0
    print(f"no runtime budget named {args.name}", file=sys.stderr)
    return 1


async def _list(store: Store, output: str) -> int:
    rules = await store.list_budget_rules()
    if output == "json":
        print(orjson.dumps([rule.model_dump(mode="json") for rule in rules]).decode())
        return 0
    for rule in rules:
        print("\t".join(_columns(rule)))
    return 0


def _columns(rule: BudgetRule) -> list[str]:
    scope = ",".join(f"{d}={v}" for d, v in sorted(rule.scope.items())) or "global"
    thresholds = ",".join(str(t) for t in rule.soft_thresholds) or "-"
    return [rule.name or "-", scope, rule.period, f"{rule.limit_usd:f}", thresholds]


async def _set(store: Store, args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {"limit_usd": args.limit_usd, "period": args.period}
    try:
        fields["scope"] = _scope(args.scope)
        if args.thresholds is not None:
            fields["soft_thresholds"] = args.thresholds
        rule = runtime_rule(args.name, fields)
    except ValueError as exc:
        print(f"costwarden: {exc}", file=sys.stderr)
        return 2
    await store.upsert_budget_rule(rule)
    print(f"set budget {rule.name}: {'  '.join(_columns(rule)[1:])}")
    return 0


def _scope(pairs: list[str]) -> dict[str, str]:
    scope: dict[str, str] = {}
    for pair in pairs:
        dimension, sep, value = pair.partition("=")
        if not sep or not dimension:
            raise ValueError(f"--scope takes DIM=VALUE (e.g. user=alice), not {pair!r}")
        if dimension in scope:
            raise ValueError(f"--scope names {dimension!r} twice")
        scope[dimension] = value
    return scope


def _decimal(text: str) -> Decimal:
    # Parsed as Decimal straight from the text: a float would not hold 0.1 exactly.
    try:
        return Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal amount: {text!r}") from None


def _percentages(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"thresholds are comma-separated whole percents, not {text!r}"
        ) from None
