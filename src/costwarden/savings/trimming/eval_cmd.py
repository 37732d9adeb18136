"""``costwarden eval trimming``: print the SciFact table and write it as JSON.

    costwarden eval trimming [--data DIR] [--json PATH] [--cache-dir DIR | --no-cache]
                             [--seed N] [--distractors N] [--embed-max-tokens N]
                             [--latency-requests N]

Embeddings of the corpus and of every candidate sentence are cached under ``--cache-dir``
(minutes to compute once on a small machine, a second to load after).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from costwarden.savings.embedding import MiniLMEmbedder
from costwarden.savings.trimming.config import TrimConfig
from costwarden.savings.trimming.evaluation import (
    Choice,
    EvalSettings,
    Prepared,
    choose,
    latency_sets,
    prepare,
    summary,
)
from costwarden.savings.trimming.latency import measure_latency
from costwarden.savings.trimming.sentence_eval import sentence_rows
from costwarden.savings.trimming.signals import TruncatedMiniLM

DEFAULT_DATA = Path("../shared/data/rag/scifact")
DEFAULT_CACHE = Path(".cache/embeddings")
DEFAULT_JSON = Path("bench/results/trimming.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="SciFact folder")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="write results here")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="embedding cache")
    parser.add_argument("--no-cache", action="store_true", help="do not cache embeddings")
    parser.add_argument("--seed", type=int, default=13, help="distractor tie-break, shuffles")
    parser.add_argument("--distractors", type=int, default=30, help="hard negatives per claim")
    parser.add_argument("--embed-max-tokens", type=int, default=128, help="MiniLM truncation")
    parser.add_argument(
        "--latency-requests", type=int, default=5, help="~50-passage requests timed (0: none)"
    )


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    settings = EvalSettings(
        data_dir=args.data,
        seed=args.seed,
        distractors=args.distractors,
        embed_max_tokens=args.embed_max_tokens,
        cache_dir=None if args.no_cache else args.cache_dir,
    )
    prepared = prepare(settings, TruncatedMiniLM(settings.embed_max_tokens))
    choice = choose(prepared.tune)
    report = summary(settings, prepared, choice)
    report["sentences"] = sentence_rows(prepared, choice.ranking, settings.model)
    if args.latency_requests > 0:
        report["latency"] = latencies(settings, prepared, choice, args.latency_requests)
    return report


def latencies(
    settings: EvalSettings, prepared: Prepared, choice: Choice, requests: int
) -> list[dict[str, Any]]:
    """Per-request trimming time of BM25 alone, of the chosen ranking in one stage and in
    two, and of the best ranking by whole passages."""
    sets = latency_sets(prepared, requests, settings.seed)
    configs = [
        ("bm25", TrimConfig(ranking="bm25")),
        (choice.ranking.label, choice.ranking.config),
        (choice.staged.label, choice.staged.config),
        (choice.fast.label, choice.fast.config),
    ]
    rows = []
    for label, config in configs:
        latency = measure_latency(
            label,
            config,
            lambda: MiniLMEmbedder(max_tokens=settings.embed_max_tokens),
            sets,
            corpus=prepared.corpus,
            model=settings.model,
        )
        rows.append(asdict(latency))
    return rows


def render(report: dict[str, Any], console: Console) -> None:
    claims = report["claims"]
    table = Table(
        title=f"Context trimming on SciFact: test half ({claims['test']} claims; "
        f"{report['candidates_per_claim']:.1f} candidates, "
        f"{report['tokens_per_claim']:.0f} tokens each)"
    )
    for column in ("ranking", "policy", "evidence kept", "claims whole", "tokens kept", "passages"):
        table.add_column(column, justify="left" if column in ("ranking", "policy") else "right")
    for row in report["test"]:
        table.add_row(
            row["ranking"],
            row["policy"],
            f"{row['evidence_kept']:.1%}",
            f"{row['claims_whole']:.1%}",
            f"{row['tokens_kept']:.1%}",
            f"{row['passages_kept']:.1f}",
        )
    console.print(table)
    chosen = report["chosen_ranking"]
    fast = report["fast_ranking"]
    console.print(f"ranking chosen on the tuning half ({claims['tune']} claims): {chosen}")
    console.print(f"best ranking by whole passages (cheaper to embed): {fast}")
    recall = report["first_stage_recall_tune"]
    shown = ", ".join(f"{k}: {recall[k]:.1%}" for k in ("5", "10", "15", "20", "25") if k in recall)
    console.print(
        f"{report['staged_ranking']}: {chosen} re-ranking only the first stage's top-M "
        f"(first stage: BM25 + each passage's first sentence); evidence in the first stage's "
        f"top-M on the tuning half: {shown}"
    )
    for kind in ("chosen", "fast", "staged"):
        policies = ", ".join(f"{k}: {v}" for k, v in report[f"{kind}_policies_tune"].items())
        console.print(
            f"{report[f'{kind}_ranking']}: cheapest policies keeping >= 95 % of the evidence "
            f"on the tuning half: {policies}"
        )
    console.print(_sentence_table(report))
    for row in report.get("latency", []):
        console.print(
            f"latency, {row['ranking']}: {row['passages']:.0f} passages/request, "
            f"cold p50 {row['cold_ms_p50']:.0f} ms (p90 {row['cold_ms_p90']:.0f}), "
            f"warm cache p50 {row['warm_ms_p50']:.0f} ms (p90 {row['warm_ms_p90']:.0f})"
        )


def _sentence_table(report: dict[str, Any]) -> Table:
    table = Table(
        title="Sentence-level trimming, test half: kept passages cut to their best sentences"
    )
    columns = ("policy", "evidence abstracts", "evidence sentences", "tokens kept", "passages")
    for column in columns:
        table.add_column(column, justify="left" if column == "policy" else "right")
    for row in report["sentences"]:
        table.add_row(
            row["policy"],
            f"{row['evidence_kept']:.1%}",
            f"{row['evidence_sentences_kept']:.1%}",
            f"{row['tokens_kept']:.1%}",
            f"{row['passages_kept']:.1f}",
        )
    return table


def run(args: argparse.Namespace) -> int:
    report = evaluate(args)
    render(report, Console(width=120))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="costwarden eval trimming")
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
