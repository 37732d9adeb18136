"""``costwarden cascade …``: calibrate a cascade's thresholds from labelled data, and build the
real MMLU calibration set (``cascade_mmlu``).

    costwarden cascade calibrate --data rows.jsonl [--budget USD | --target ACC]
    costwarden cascade mmlu-rows --data /path/to/routing/mmlu --out rows.jsonl

``calibrate`` prints the chosen thresholds with their accuracy and cost per query on the held-out
rows, the saving against the top tier alone, and the accuracy/cost frontier; it writes
``calibration.json`` and ``cascade.yaml`` (a ``savings.cascades`` entry) to ``--out``. With
neither a budget nor a target it matches the top tier's accuracy on the training rows
(FrugalGPT's headline comparison), and ``--anchors`` prints FrugalGPT's published points beside.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from costwarden.savings.cascade.calibration import (
    SKIP,
    Calibration,
    Point,
    calibrate,
    load_labelled,
    split_labelled,
    tier_alone,
)
from costwarden.savings.cascade.mmlu import frugalgpt_anchors, write_mmlu_rows

_FRONTIER_ROWS = 12  # the printed frontier is thinned to about this many points


def add_cascade_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    cascade = sub.add_parser("cascade", help="model cascades: threshold calibration")
    commands = cascade.add_subparsers(dest="cascade_command", required=True)
    cal = commands.add_parser("calibrate", help="choose tier thresholds from labelled rows")
    cal.add_argument("--data", type=Path, required=True, help="JSONL or CSV calibration rows")
    goal = cal.add_mutually_exclusive_group()
    goal.add_argument("--budget", type=float, help="most mean cost per query (USD)")
    goal.add_argument("--target", type=float, help="least accuracy to reach (0-1)")
    cal.add_argument("--seed", type=int, default=0, help="train/test split seed")
    cal.add_argument("--test-share", type=float, default=0.3)
    cal.add_argument("--max-points", type=int, default=20_000, help="threshold combinations")
    cal.add_argument("--name", default="cascade", help="cascade name in the YAML snippet")
    cal.add_argument("--out", type=Path, default=Path("cascade-calibration"))
    cal.add_argument("--anchors", type=Path, help="FrugalGPT summary/ folder, printed beside")
    rows = commands.add_parser("mmlu-rows", help="build calibration rows from RouteLLM's MMLU")
    rows.add_argument("--data", type=Path, required=True, help="the mmlu/ folder")
    rows.add_argument("--out", type=Path, required=True)
    rows.add_argument("--folds", type=int, default=5)
    rows.add_argument("--output-tokens", type=int, default=1, help="assumed per answer")
    rows.add_argument("--cache-dir", type=Path, help="embedding cache (default .cache/)")


def cascade_command(args: argparse.Namespace) -> int:
    if args.cascade_command == "mmlu-rows":
        source = args.data / "responses" if (args.data / "responses").is_dir() else args.data
        count = write_mmlu_rows(
            source,
            args.out,
            folds=args.folds,
            output_tokens=args.output_tokens,
            cache_dir=args.cache_dir,
        )
        print(f"wrote {count} rows to {args.out}")
        return 0
    return _calibrate(args)


def _calibrate(args: argparse.Namespace) -> int:
    data = load_labelled(args.data)
    train, test = split_labelled(data, args.seed, args.test_share)
    target = args.target
    if args.budget is None and target is None:
        target = tier_alone(train, len(train.models) - 1).accuracy
    result = calibrate(train, test, budget=args.budget, target=target, max_points=args.max_points)
    print(f"{len(data)} rows: {len(train)} train, {len(test)} test (seed {args.seed})")
    if result is None:
        print("no thresholds meet the budget/target on the training rows")
        return 1
    goal = f"budget {args.budget} USD/query" if args.budget is not None else f"target {target:.4f}"
    print(f"goal ({goal}), chosen on train, reported on test:")
    _print_result(result)
    if args.anchors is not None:
        _print_anchors(args.anchors)
    args.out.mkdir(parents=True, exist_ok=True)
    report = _report(result, args)
    (args.out / "calibration.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out / 'calibration.json'}")
    snippet = config_snippet(result, args.name)
    if snippet is None:
        print(f"every tier below the top is skipped: call {result.models[-1]} directly")
        return 0
    (args.out / "cascade.yaml").write_text(yaml.safe_dump(snippet, sort_keys=False))
    print(f"wrote {args.out / 'cascade.yaml'}")
    return 0


def _thresholds(result: Calibration, point: Point) -> str:
    return ", ".join(
        f"{m}: {'skip' if t == SKIP else f'{t:.4f}'}"
        for m, t in zip(result.models, point.thresholds, strict=False)
    )


def _print_result(result: Calibration) -> None:
    print(f"  thresholds   {_thresholds(result, result.chosen)}; {result.models[-1]}: always")
    print(f"  train        accuracy {result.chosen.accuracy:.4f}  cost {result.chosen.cost:.3e}")
    print(f"  test         accuracy {result.test.accuracy:.4f}  cost {result.test.cost:.3e}")
    for model, alone in zip(result.models, result.alone, strict=True):
        print(f"  {model} alone: accuracy {alone.accuracy:.4f}  cost {alone.cost:.3e}")
    print(f"  saving vs {result.models[-1]} alone (test): {result.saving_vs_top:.1%}")
    print("  frontier (train → test):")
    step = max(1, len(result.frontier) // _FRONTIER_ROWS)
    shown = [*result.frontier[::step], result.frontier[-1]]
    for train, test in dict.fromkeys(shown):
        print(
            f"    acc {train.accuracy:.4f} → {test.accuracy:.4f}   cost {train.cost:.3e} → "
            f"{test.cost:.3e}   [{_thresholds(result, train)}]"
        )


def _print_anchors(summary_dir: Path) -> None:
    print("FrugalGPT published (cheapest budget point matching the best single model, test):")
    for a in frugalgpt_anchors(summary_dir):
        print(
            f"  {a.dataset:<11} best {a.best_model} acc {a.best_accuracy:.4f} "
            f"cost {a.best_cost:.3e} | FrugalGPT acc {a.frugal_accuracy:.4f} "
            f"cost {a.frugal_cost:.3e} | saving {a.saving:.1%}"
        )


def _report(result: Calibration, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "data": str(args.data),
        "seed": args.seed,
        "test_share": args.test_share,
        "models": list(result.models),
        "chosen": {"train": result.chosen.as_dict(), "test": result.test.as_dict()},
        "alone_test": {m: p.as_dict() for m, p in zip(result.models, result.alone, strict=True)},
        "saving_vs_top_test": result.saving_vs_top,
        "frontier": [{"train": a.as_dict(), "test": b.as_dict()} for a, b in result.frontier],
    }


def config_snippet(result: Calibration, name: str) -> dict[str, Any] | None:
    """A ``savings.cascades`` entry: skipped tiers left out, the top tier without threshold
    (None when only the top tier is left: no cascade to configure)."""
    tiers: list[dict[str, Any]] = [
        {"model": m, "threshold": round(t, 4)}
        for m, t in zip(result.models, result.chosen.thresholds, strict=False)
        if t != SKIP
    ]
    if not tiers:
        return None
    tiers.append({"model": result.models[-1]})
    return {"savings": {"cascades": [{"name": name, "tiers": tiers}]}}
