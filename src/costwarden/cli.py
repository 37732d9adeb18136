"""The ``costwarden`` command.

    costwarden serve [--config FILE] [--host H] [--port P] [--demo]
    costwarden keys create --user U [--team T] [--name N] | keys list | keys revoke ID
    costwarden budgets list | budgets set NAME --limit-usd X [...] | budgets delete NAME
    costwarden report [--by user,model] [--since 7d] [--until DATE] [--format table|csv|json]
    costwarden savings [--since 30d] [--until DATE] [--format table|json]
    costwarden whatif --map gpt-4o=gpt-4o-mini [--where feature=X] [--discount-pct 50] [--by team]
    costwarden prices check [--since 7d] [--format table|json]
    costwarden forecast [--by team] [--month 2026-12] [--format table|json]
    costwarden distill candidates [--since 30d] | distill export --feature X -o train.jsonl
    costwarden batch submit FILE.jsonl | batch worker | batch status | batch wait | batch results
    costwarden plan selfhost|gpus|padding|spot|autoscale|strategy|design|measure [...]
    costwarden migrate
    costwarden fake-upstream [--port P]      the simulated upstream alone (demo, benchmarks)

Every command reads the same config (``--config``, else ``$COSTWARDEN_CONFIG``, else
``./costwarden.yaml``, else built-in defaults); ``--demo`` selects the demo ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from rich.console import Console

from costwarden.batch.cli import add_batch_commands, batch_command
from costwarden.cli_budgets import add_budget_commands, budgets_command
from costwarden.config import Settings, load_settings
from costwarden.distill.cli import add_distill_commands, distill_command
from costwarden.errors import ConfigError
from costwarden.keys import KeyStore
from costwarden.ledger import Store, open_store
from costwarden.monitor.forecast_cli import add_forecast_parser, forecast_command
from costwarden.monitor.price_watch_cli import add_prices_command, prices_command
from costwarden.monitor.whatif_cli import add_whatif_command, whatif_command
from costwarden.planner.cli import add_plan_commands, plan_command
from costwarden.providers.fake_process import main as fake_upstream_main
from costwarden.reports import parse_range, render_csv, render_json, render_table, spend_report
from costwarden.savings.cascade.cli import add_cascade_commands, cascade_command
from costwarden.savings.eval_cli import add_eval_parser, eval_command
from costwarden.savings.report import render_savings, savings_report
from costwarden.savings.router.cli import add_router_commands, router_command
from costwarden.server import ServeOptions, demo_settings, load_for_serve
from costwarden.server import run as run_server

_GROUPS = ("user", "team", "model", "feature", "env", "key", "day", "provider", "status")


def _parser() -> argparse.ArgumentParser:
    # --config/--demo are accepted before or after the sub-command; SUPPRESS keeps a
    # sub-command's absent flag from overwriting one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help="YAML config file")
    common.add_argument(
        "--demo", action="store_true", default=argparse.SUPPRESS, help="simulated demo setup"
    )
    parser = argparse.ArgumentParser(
        prog="costwarden", description="LLM FinOps gateway", parents=[common]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway", parents=[common])
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--log-level", default="info")

    keys = sub.add_parser("keys", help="manage virtual API keys", parents=[common])
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", parents=[common])
    create.add_argument("--user", required=True)
    create.add_argument("--team")
    create.add_argument("--name")
    keys_sub.add_parser("list", parents=[common])
    revoke = keys_sub.add_parser("revoke", parents=[common])
    revoke.add_argument("key_id")

    add_budget_commands(sub, common)
    add_batch_commands(sub, common)

    report = sub.add_parser("report", help="spend over a time range", parents=[common])
    report.add_argument("--by", default="user,model", help=f"comma list of {', '.join(_GROUPS)}")
    report.add_argument("--since", default="30d", help="7d, 24h, or an ISO date")
    report.add_argument("--until")
    report.add_argument("--format", choices=("table", "csv", "json"), default="table")
    for name in ("user", "team", "model", "feature", "env", "key"):
        report.add_argument(f"--{name}", dest=f"filter_{name}", help=f"only this {name}")

    savings = sub.add_parser(
        "savings", help="what cache, cascade, router and trimming saved", parents=[common]
    )
    savings.add_argument("--since", default="30d", help="7d, 24h, or an ISO date")
    savings.add_argument("--until")
    savings.add_argument("--format", choices=("table", "json"), default="table")

    add_whatif_command(sub, common)
    add_prices_command(sub, common)
    add_forecast_parser(sub, common)
    add_distill_commands(sub, common)

    sub.add_parser("migrate", help="create or upgrade the ledger schema", parents=[common])
    for add_commands in _OFFLINE_PARSERS:
        add_commands(sub, common)
    fake = sub.add_parser(
        "fake-upstream", help="run the simulated upstream alone (see --help after it)"
    )
    fake.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    path = getattr(args, "config", None) or os.environ.get("COSTWARDEN_CONFIG")
    if path is None and os.path.exists("costwarden.yaml"):
        path = "costwarden.yaml"
    settings = load_settings(path) if path else Settings()
    if getattr(args, "demo", False):
        return demo_settings("http://127.0.0.1:0", settings)
    return settings


async def _with_store(settings: Settings, work: Callable[[Store], Awaitable[int]]) -> int:
    store = await open_store(settings.ledger)
    try:
        await store.migrate()
        return await work(store)
    finally:
        await store.close()


async def _keys(args: argparse.Namespace, store: Store) -> int:
    keys = KeyStore(store)
    if args.keys_command == "create":
        created = await keys.create(user=args.user, team=args.team, name=args.name)
        print(f"key id:  {created.key_id}\nkey:     {created.secret}")
        print("(the key is shown only now; it is stored hashed)", file=sys.stderr)
        return 0
    if args.keys_command == "list":
        for key in await keys.list():
            info = key.to_public()
            print(
                "\t".join(
                    str(info.get(f) or "-")
                    for f in ("id", "prefix", "user", "team", "name", "created_at", "revoked_at")
                )
            )
        return 0
    if await keys.revoke(args.key_id):
        print(f"revoked {args.key_id}")
        return 0
    print(f"no key with id {args.key_id}", file=sys.stderr)
    return 1


async def _report(args: argparse.Namespace, store: Store) -> int:
    group_by = [g for g in args.by.split(",") if g]
    bad = [g for g in group_by if g not in _GROUPS]
    if bad:
        print(f"cannot group by {bad}; choose from {', '.join(_GROUPS)}", file=sys.stderr)
        return 2
    since, until = parse_range(args.since, args.until)
    filters = {
        name[len("filter_") :]: value
        for name, value in vars(args).items()
        if name.startswith("filter_") and value
    }
    rows = await spend_report(store, group_by, since, until, filters)
    if args.format == "csv":
        sys.stdout.write(render_csv(rows))
    elif args.format == "json":
        sys.stdout.write(render_json(rows) + "\n")
    else:
        title = f"Spend {since:%Y-%m-%d %H:%M} → {until:%Y-%m-%d %H:%M} UTC"
        console = Console(width=None if sys.stdout.isatty() else 200)
        console.print(render_table(rows, group_by, title=title))
    return 0


async def _savings(args: argparse.Namespace, store: Store) -> int:
    since, until = parse_range(args.since, args.until)
    report = await savings_report(store, since, until)
    if args.format == "json":
        sys.stdout.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        Console(width=None if sys.stdout.isatty() else 200).print(render_savings(report))
    return 0


async def _whatif(args: argparse.Namespace, store: Store) -> int:
    return await whatif_command(args, store, _settings(args))


async def _prices(args: argparse.Namespace, store: Store) -> int:
    return await prices_command(args, store, _settings(args))


async def _forecast(args: argparse.Namespace, store: Store) -> int:
    return await forecast_command(args, store, _settings(args))


async def _distill(args: argparse.Namespace, store: Store) -> int:
    return await distill_command(args, store, _settings(args))


async def _migrate(_: argparse.Namespace, store: Store) -> int:
    print("ledger schema is up to date")
    return 0


def _plan(args: argparse.Namespace) -> int:
    # Most planner commands never touch the ledger: settings load only for --from-ledger.
    return plan_command(args, lambda: _settings(args))


_STORE_COMMANDS: dict[str, Callable[[argparse.Namespace, Store], Awaitable[int]]] = {
    "keys": _keys,
    "budgets": budgets_command,
    "report": _report,
    "savings": _savings,
    "whatif": _whatif,
    "prices": _prices,
    "forecast": _forecast,
    "distill": _distill,
    "migrate": _migrate,
}


# Commands that work on files, not on the ledger (evaluations, training): each module adds its
# parser and handles its own arguments; the handler returns the exit status.
_OFFLINE_PARSERS: tuple[Callable[[Any, argparse.ArgumentParser], None], ...] = (
    add_router_commands,
    add_eval_parser,
    add_cascade_commands,
    add_plan_commands,
)
_OFFLINE_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "router": router_command,
    "eval": eval_command,
    "cascade": cascade_command,
    "plan": _plan,
}


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["fake-upstream"]:
        # Its own options follow it; argparse's REMAINDER in a subparser drops leading ones.
        fake_upstream_main(given[1:])
        return 0
    args = _parser().parse_args(given)
    try:
        if args.command == "serve":
            options = ServeOptions(
                getattr(args, "config", None),
                args.host,
                args.port,
                getattr(args, "demo", False),
                args.log_level,
            )
            load_for_serve(options)  # fail fast on a bad config, before uvicorn starts
            run_server(options)
            return 0
        if args.command in _OFFLINE_COMMANDS:
            return _OFFLINE_COMMANDS[args.command](args)
        settings = _settings(args)
        if args.command == "batch":  # opens the queue (and, for workers, the ledger) itself
            return batch_command(args, settings)
        command = _STORE_COMMANDS[args.command]

        async def work(store: Store) -> int:
            return await command(args, store)

        return asyncio.run(_with_store(settings, work))
    except (ConfigError, ValueError) as exc:
        print(f"costwarden: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
