"""``costwarden eval semantic-cache``: print the STS-B table and write it as JSON.

    costwarden eval semantic-cache [--data DIR] [--json PATH] [--cache-dir DIR]
                                   [--fit [--model-out PATH]] [--allow-number-mismatch]

``--fit`` refits the second-stage model on train (never dev) and evaluates that one; with
``--model-out`` it also writes it (the shipped one is ``savings/data/semantic-check.json``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from costwarden.savings.embedding import MiniLMEmbedder
from costwarden.savings.semantic.check import CheckModel, shipped_model
from costwarden.savings.semantic.evaluation import (
    THRESHOLDS,
    embed_split,
    fit_check_model,
    load_pairs,
    report,
)

DEFAULT_DATA = Path("../shared/data/semantic-cache/stsb")
DEFAULT_CACHE = Path(".cache/embeddings")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of stsb-en-*.csv")
    parser.add_argument("--json", type=Path, help="write the full results here")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="embedding cache")
    parser.add_argument("--fit", action="store_true", help="refit the check on train first")
    parser.add_argument("--model-out", type=Path, help="with --fit: write the fitted model")
    parser.add_argument(
        "--allow-number-mismatch",
        action="store_true",
        help="evaluate without the numbers-must-match veto",
    )


def run(args: argparse.Namespace) -> int:
    embedder = MiniLMEmbedder()
    train = embed_split(
        "train", load_pairs(args.data / "stsb-en-train.csv"), embedder, args.cache_dir
    )
    dev = embed_split("dev", load_pairs(args.data / "stsb-en-dev.csv"), embedder, args.cache_dir)
    numbers = not args.allow_number_mismatch
    model: CheckModel = fit_check_model(train, numbers) if args.fit else shipped_model()
    if args.fit and args.model_out:
        args.model_out.write_text(model.to_json() + "\n", encoding="utf-8")
    results = report(train, dev, model, numbers)
    print(render(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


def _cells(row: dict[str, float]) -> str:
    return f"{row['hit']:6.1%} {row['strict_hit']:6.1%} {row['false_hit']:6.2%}"


def render(results: dict[str, Any]) -> str:
    head = "  hit   strict  false"
    lines = [
        "hit = score>=4.0 pairs that hit, strict = score>=4.5, false = score<=3.0 pairs that hit",
        f"{'':9}"
        + " ".join(
            f"{t:^22}" for t in ("train: cosine", "train: +check", "dev: cosine", "dev: +check")
        ),
        f"{'thresh':9}{head:22} {head:22} {head:22} {head:22}",
    ]
    for i, threshold in enumerate(THRESHOLDS):
        cells = [
            _cells(results[arm][split][i])
            for split in ("train", "dev")
            for arm in ("cosine", "cosine+check")
        ]
        lines.append(f"{threshold:<9.2f}" + "  ".join(cells))
    lines.append("")
    for arm, default in results["default"].items():
        if default["threshold"] is None:
            lines.append(f"{arm}: no threshold keeps false hits <= 1 % on train")
            continue
        lines.append(
            f"default ({arm}, chosen on train: most hits with false hits <= 1 %): "
            f"threshold {default['threshold']:.2f}; train {_cells(default['train'])}; "
            f"dev {_cells(default['dev'])}"
        )
    spear = results["spearman"]
    lines.append(f"Spearman(cosine, score): train {spear['train']:.3f}, dev {spear['dev']:.3f}")
    lines.append(
        f"check: min probability {results['check_min_probability']:.2f}, "
        f"numbers must match: {results['require_same_numbers']}; {results['model']}"
    )
    return "\n".join(lines)
