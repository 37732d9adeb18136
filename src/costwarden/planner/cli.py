"""``costwarden plan <sub>``: parse inputs (scenario file < ledger traffic < flags), run the
library calculator, print its explanation (or JSON), and draw ``--plot``.

    costwarden plan selfhost|gpus|padding|spot|autoscale|strategy|design [--scenario FILE]
        [--catalog FILE] [--plot PNG] [--format table|json] [--<input> VALUE …]
    costwarden plan selfhost|padding|autoscale --from-ledger [--since 7d] [--where model=X]
    costwarden plan measure --base-url URL --model M [--input-tokens N] [--output-tokens N]
        [--concurrency 1,4,16] [--requests 32] [--api-key-env VAR] [--extra-body JSON]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel
from rich.console import Console

from costwarden.config import Settings
from costwarden.ledger import open_store
from costwarden.monitor.whatif import parse_where
from costwarden.planner import plots
from costwarden.planner.autoscale import AutoscaleInputs, explain_autoscale, plan_autoscale
from costwarden.planner.design import DesignInputs, design
from costwarden.planner.design_report import explain_design
from costwarden.planner.flags import add_model_flags, flag_values
from costwarden.planner.gpus import Catalog, GpusInputs, compare_gpus, explain_gpus, load_catalog
from costwarden.planner.measure import MeasureOptions, explain_measure, measure
from costwarden.planner.padding import PaddingInputs, explain_padding, padding
from costwarden.planner.report import Explanation, render
from costwarden.planner.scenario import load_scenario, merged, section
from costwarden.planner.selfhost import SelfHostInputs, explain_self_host, self_host
from costwarden.planner.spot import SpotInputs, explain_spot, simulate_spot
from costwarden.planner.strategy import StrategyInputs, compare_strategies, explain_strategies
from costwarden.planner.traffic import LedgerTraffic, ledger_traffic
from costwarden.reports import parse_range


@dataclass(frozen=True, slots=True)
class PlanCommand:
    help: str
    inputs: type[BaseModel]
    compute: Callable[[Any, Catalog], Any]  # (inputs, catalog) → result
    explain: Callable[[Any], Explanation]
    plot: Callable[[Any, Path], Path]
    ledger: bool = False  # takes --from-ledger


COMMANDS: dict[str, PlanCommand] = {
    "selfhost": PlanCommand(
        "API vs self-hosted, break-even, fleet sizing",
        SelfHostInputs,
        self_host,
        explain_self_host,
        plots.plot_selfhost,
        ledger=True,
    ),
    "gpus": PlanCommand(
        "the GPU catalog: $/1M tokens per GPU",
        GpusInputs,
        lambda i, c: compare_gpus(c, i),
        explain_gpus,
        plots.plot_gpus,
    ),
    "padding": PlanCommand(
        "static batching waste vs continuous batching",
        PaddingInputs,
        lambda i, _c: padding(i),
        explain_padding,
        plots.plot_padding,
        ledger=True,
    ),
    "spot": PlanCommand(
        "Monte-Carlo of spot preemption (job or fleet)",
        SpotInputs,
        lambda i, _c: simulate_spot(i),
        explain_spot,
        plots.plot_spot,
    ),
    "autoscale": PlanCommand(
        "fixed fleet vs autoscaling vs scale-to-zero",
        AutoscaleInputs,
        lambda i, _c: plan_autoscale(i),
        explain_autoscale,
        plots.plot_autoscale,
        ledger=True,
    ),
    "strategy": PlanCommand(
        "RAG vs long context vs fine-tuning over a horizon",
        StrategyInputs,
        lambda i, _c: compare_strategies(i),
        explain_strategies,
        plots.plot_strategy,
    ),
    "design": PlanCommand(
        "the seed's summarisation service, with sensitivities",
        DesignInputs,
        design,
        explain_design,
        plots.plot_design,
    ),
}


def add_plan_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    plan = sub.add_parser(
        "plan", help="economics planner (API vs GPUs, spot, batching, …)", parents=[common]
    )
    plan_sub = plan.add_subparsers(dest="plan_command", required=True)
    for name, command in COMMANDS.items():
        parser = plan_sub.add_parser(name, help=command.help, parents=[common])
        _output_flags(parser)
        parser.add_argument("--scenario", type=Path, help="YAML scenario (section: " + name + ")")
        parser.add_argument("--catalog", type=Path, help="GPU catalog overrides (YAML)")
        if command.ledger:
            parser.add_argument(
                "--from-ledger",
                action="store_true",
                help="take traffic and token lengths from the ledger",
            )
            parser.add_argument("--since", default="7d", help="ledger range start")
            parser.add_argument("--until", help="ledger range end (default: now)")
            parser.add_argument("--where", action="append", default=[], metavar="DIM=VALUE")
        add_model_flags(parser, command.inputs)
    _add_measure(plan_sub, common)


def _output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plot", type=Path, help="write a PNG chart here")
    parser.add_argument("--format", choices=("table", "json"), default="table")


def _add_measure(plan_sub: Any, common: argparse.ArgumentParser) -> None:
    parser = plan_sub.add_parser(
        "measure", help="tokens/s and TTFT of an OpenAI-compatible server", parents=[common]
    )
    _output_flags(parser)
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--model", required=True)
    parser.add_argument("--input-tokens", type=int, default=512)
    parser.add_argument("--output-tokens", type=int, default=128)
    parser.add_argument("--concurrency", default="1,4,16", help="comma-separated levels")
    parser.add_argument("--requests", type=int, default=32, help="requests per level")
    parser.add_argument("--api-key-env", help="environment variable holding the API key")
    parser.add_argument("--extra-body", default="{}", help="JSON merged into each request")
    parser.add_argument("--timeout-s", type=float, default=300.0)


def plan_command(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    """Run ``plan <sub>``; ``settings`` is called only when the ledger is read."""
    if args.plan_command == "measure":
        return _measure(args)
    name = args.plan_command
    command = COMMANDS[name]
    document = load_scenario(args.scenario) if args.scenario else {}
    layers: list[dict[str, Any]] = [section(document, name)]
    traffic = None
    if getattr(args, "from_ledger", False):
        traffic = asyncio.run(_read_ledger(args, settings()))
        layers.append(traffic.overrides(name))
    layers.append(flag_values(args, command.inputs))
    inputs = command.inputs.model_validate(merged(*layers))
    catalog_layers = [section(document, "gpus")]
    if args.catalog:
        catalog_layers.append(load_scenario(args.catalog))
    result = command.compute(inputs, load_catalog(*catalog_layers))
    explanation = command.explain(result)
    if traffic is not None:
        traffic.describe(explanation)
    _emit(args, result, explanation)
    if args.plot:
        print(f"wrote {command.plot(result, args.plot)}")
    return 0


async def _read_ledger(args: argparse.Namespace, settings: Settings) -> LedgerTraffic:
    since, until = parse_range(args.since, args.until)
    store = await open_store(settings.ledger)
    try:
        await store.migrate()
        return await ledger_traffic(store, since, until, parse_where(args.where))
    finally:
        await store.close()


def _emit(args: argparse.Namespace, result: Any, explanation: Explanation) -> None:
    if args.format == "json":
        document = {"result": result.to_dict(), "explanation": explanation.to_dict()}
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    render(explanation, Console(width=None if sys.stdout.isatty() else 140))


def _measure(args: argparse.Namespace) -> int:
    extra = orjson.loads(args.extra_body)
    if not isinstance(extra, dict):
        raise ValueError("--extra-body must be a JSON object")
    key = os.environ.get(args.api_key_env) if args.api_key_env else None
    options = MeasureOptions(
        base_url=args.base_url,
        model=args.model,
        input_tokens=args.input_tokens,
        output_tokens=args.output_tokens,
        concurrency=tuple(int(c) for c in args.concurrency.split(",") if c.strip()),
        requests=args.requests,
        api_key=key,
        extra_body=extra,
        timeout_s=args.timeout_s,
    )
    result = asyncio.run(measure(options))
    _emit(args, result, explain_measure(result))
    if args.plot:
        print(f"wrote {plots.plot_measure(result, args.plot)}")
    return 0 if all(level.errors < level.requests for level in result.levels) else 1
