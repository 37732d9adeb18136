"""``costwarden distill``: rank features for a fine-tuned small model, export a feature's
captured traffic as fine-tuning JSONL, purge expired pairs.

    costwarden distill candidates [--since 30d] [--until DATE] [--format table|json]
    costwarden distill export --feature X -o train.jsonl [--validation-share 0.1] [--since 30d]
    costwarden distill purge
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from rich.console import Console

from costwarden.config import Settings
from costwarden.distill.candidates import find_candidates, monthly_costs, usage_of
from costwarden.distill.capture import purge_expired
from costwarden.distill.config import FeatureCapture
from costwarden.distill.economics import TargetRates, fine_tune_payback, target_rates
from costwarden.distill.export import prepare, validation_path, write_jsonl
from costwarden.distill.redaction import RedactionChain
from costwarden.distill.render import ExportSummary, candidates_table
from costwarden.distill.storage import PairStore, open_pair_store
from costwarden.ledger.store import Store
from costwarden.pricing import PriceBook, TokenCounter
from costwarden.records import utcnow
from costwarden.reports import TimeRange, parse_range

_MAX_VALIDATION_SHARE = 0.5


class _Run(NamedTuple):
    """What every sub-command works with."""

    store: Store
    pairs: PairStore
    settings: Settings
    rates: TargetRates
    window: TimeRange


def add_distill_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    distill = sub.add_parser(
        "distill", help="fine-tuned small models: candidates and training data", parents=[common]
    )
    commands = distill.add_subparsers(dest="distill_command", required=True)
    candidates = commands.add_parser(
        "candidates", help="rank features by what a fine-tuned model would save", parents=[common]
    )
    _add_window(candidates)
    candidates.add_argument("--format", choices=("table", "json"), default="table")
    export = commands.add_parser(
        "export", help="a feature's captured pairs as fine-tuning JSONL", parents=[common]
    )
    export.add_argument("--feature", required=True)
    export.add_argument("-o", "--output", required=True, type=Path, help="the JSONL to write")
    export.add_argument("--validation-share", type=float, default=0.0, metavar="SHARE")
    _add_window(export)
    export.add_argument("--format", choices=("text", "json"), default="text")
    commands.add_parser("purge", help="delete pairs past their retention now", parents=[common])


def _add_window(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", default="30d", help="7d, 24h, or an ISO date")
    parser.add_argument("--until")


async def distill_command(args: argparse.Namespace, store: Store, settings: Settings) -> int:
    pairs = await open_pair_store(settings.ledger)
    try:
        if args.distill_command == "purge":
            deleted = await purge_expired(pairs, settings.distill.capture, utcnow())
            print(f"deleted {deleted} pairs past their retention")
            return 0
        window = parse_range(args.since, args.until)
        rates = target_rates(settings.distill.target, settings, PriceBook(settings), window.until)
        run = _Run(store, pairs, settings, rates, window)
        if args.distill_command == "candidates":
            return await _candidates(args, run)
        return await _export(args, run)
    finally:
        await pairs.close()


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 200)


def _print_json(document: Any) -> None:
    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")


async def _candidates(args: argparse.Namespace, run: _Run) -> int:
    store, pairs, settings, rates, window = run
    found = await find_candidates(store, pairs, rates, settings.distill.candidates, window)
    if args.format == "json":
        document = {
            "since": window.since.isoformat(),
            "until": window.until.isoformat(),
            "target": rates.to_dict(),
            "candidates": [c.to_dict() for c in found],
        }
        _print_json(document)
        return 0
    span = f"{window.since:%Y-%m-%d %H:%M} → {window.until:%Y-%m-%d %H:%M} UTC"
    title = f"Distillation candidates {span}"
    _console().print(candidates_table(found, rates, title))
    return 0


async def _export(args: argparse.Namespace, run: _Run) -> int:
    store, pairs, settings, rates, window = run
    share = args.validation_share
    if not 0.0 <= share <= _MAX_VALIDATION_SHARE:
        raise ValueError(f"--validation-share must be in [0, {_MAX_VALIDATION_SHARE}]")
    feature = settings.distill.capture.features.get(args.feature) or FeatureCapture()
    stored = await pairs.pairs(args.feature, utcnow())
    examples = prepare(stored, RedactionChain(feature.redact), share)
    if not examples.train:
        print(f"no captured pairs of feature {args.feature!r} within retention", file=sys.stderr)
        return 1
    tokens, model = TokenCounter(), settings.distill.target.tokenizer_model
    train = write_jsonl(args.output, examples.train, tokens, model)
    validation = None
    if examples.validation:
        validation = write_jsonl(validation_path(args.output), examples.validation, tokens, model)
    usage = await usage_of(store, args.feature, window)
    monthly, payback = None, None
    if usage is not None:
        monthly = monthly_costs(usage, rates)
        payback = fine_tune_payback(usage, rates, rates.training_cost(train.tokens))
    summary = ExportSummary(
        args.feature, train, validation, examples.duplicates, rates, monthly, payback
    )
    if args.format == "json":
        _print_json(summary.to_dict())
    else:
        print("\n".join(summary.lines()))
    return 0
