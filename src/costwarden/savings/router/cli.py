"""``costwarden router train`` and ``costwarden router eval``.

    costwarden router eval  [--data CSV|DIR] [--weak COL --strong COL] [--seed N]
                            [--eval-share F] [--targets 0.2,0.35,0.5] [--json F] [--png F]
    costwarden router train [--data CSV|DIR] [--weak COL --strong COL] [--all]
                            [--strong-share auto|F] [--out STEM]

``--data`` defaults to RouteLLM's MMLU responses in ``../shared/data/routing/mmlu`` (all its
CSVs; weak = Mixtral-8x7B, strong = GPT-4-1106). Any CSV with a ``prompt`` column and one
True/False or 0-1 score column per model works: name the columns with ``--weak`` / ``--strong``.
Prompt embeddings are cached under ``--cache-dir`` (``.cache/embeddings``) for reruns.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from costwarden.savings.router.artifact import RouterArtifact, save_artifact
from costwarden.savings.router.data import GPT4, MIXTRAL, load_routing_csv, split_mask
from costwarden.savings.router.evaluation import (
    EvalOptions,
    auto_share,
    embed_data,
    embed_tails,
    evaluate,
    render_table,
    report_json,
)
from costwarden.savings.router.model import RouterTrainConfig, calibrate_threshold, fit_router

MMLU_PARTS = ("shared", "data", "routing", "mmlu")


def default_data() -> Path:
    """MMLU beside the working directory's checkout, else beside this source tree's."""
    candidates = [Path.cwd().parent.joinpath(*MMLU_PARTS)]
    candidates.append(Path(__file__).resolve().parents[4].parent.joinpath(*MMLU_PARTS))
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[0]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, help="CSV file or folder of CSVs (default: MMLU)")
    parser.add_argument("--weak", default=MIXTRAL, help="score column of the weak model")
    parser.add_argument("--strong", default=GPT4, help="score column of the strong model")
    parser.add_argument("--seed", type=int, default=0, help="split seed (hash salt)")
    parser.add_argument("--eval-share", type=float, default=0.3, help="held-out share")
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/embeddings"))
    parser.add_argument("--no-cache", action="store_true", help="do not read/write the cache")
    parser.add_argument("--no-lexical", action="store_true", help="embedding heads only")


def add_router_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    router = sub.add_parser("router", help="train / evaluate the learned router", parents=[common])
    commands = router.add_subparsers(dest="router_command", required=True)
    evaluate_cmd = commands.add_parser("eval", help="held-out evaluation with baselines")
    _common(evaluate_cmd)
    evaluate_cmd.add_argument(
        "--targets", default="0.2,0.35,0.5", help="strong shares to calibrate on train"
    )
    evaluate_cmd.add_argument("--json", type=Path, default=Path("bench/results/router_eval.json"))
    evaluate_cmd.add_argument("--png", type=Path, default=Path("bench/results/router_eval.png"))
    evaluate_cmd.add_argument("--no-baselines", action="store_true")
    train = commands.add_parser("train", help="fit a router and save its artifact")
    _common(train)
    train.add_argument("--all", action="store_true", help="train on every row (no held-out)")
    train.add_argument("--strong-share", default="auto", help="'auto' (95%% of strong) or 0-1")
    train.add_argument("--out", type=Path, default=Path("costwarden-router"), help="artifact stem")


def _load(args: argparse.Namespace) -> tuple[Any, Path]:
    source = args.data or default_data()
    if not source.exists():
        raise ValueError(f"no routing data at {source} (give --data)")
    return load_routing_csv(source, args.weak, args.strong), source


def _embedder() -> Any:
    # Loading onnxruntime costs ~0.25 s: only the router commands pay it, not every CLI call.
    from costwarden.savings.embedding import MiniLMEmbedder  # noqa: PLC0415

    return MiniLMEmbedder()


def _config(args: argparse.Namespace) -> RouterTrainConfig:
    return RouterTrainConfig(lexical=not args.no_lexical, seed=args.seed)


def _eval(args: argparse.Namespace) -> int:
    data, source = _load(args)
    embedder = _embedder()
    cache = None if args.no_cache else args.cache_dir
    vectors = embed_data(embedder, data, cache)
    tails = embed_tails(embedder, data, vectors, cache)
    targets = tuple(float(t) for t in args.targets.split(",") if t.strip())
    opts = EvalOptions(
        seed=args.seed,
        eval_share=args.eval_share,
        targets=targets,
        baselines=not args.no_baselines,
        config=_config(args),
    )
    report = evaluate(data, vectors, opts, tails)
    print(f"data: {source}  weak: {args.weak}  strong: {args.strong}  embedder: {embedder.name}")
    print(render_table(report))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report_json(report, str(source), opts), indent=2) + "\n")
    from costwarden.savings.router.plot import plot_curves  # noqa: PLC0415 - matplotlib is slow

    title = f"{source.name}: weak {args.weak} vs strong {args.strong}"
    plot_curves(report, args.png, title)
    print(f"wrote {args.json} and {args.png}")
    return 0


def _train(args: argparse.Namespace) -> int:
    data, source = _load(args)
    embedder = _embedder()
    # Embed every row, as ``eval`` does, so both commands share one cache entry.
    cache = None if args.no_cache else args.cache_dir
    vectors = embed_data(embedder, data, cache)
    tails = embed_tails(embedder, data, vectors, cache)
    if not args.all:
        keep = ~split_mask(data.prompts, args.seed, args.eval_share)
        data, vectors, tails = data.take(keep), vectors[keep], tails[keep]
    config = _config(args)
    router = fit_router(vectors, data.prompts, data.weak, data.strong, config, tails=tails)
    share = auto_share(router, data) if args.strong_share == "auto" else float(args.strong_share)
    artifact = RouterArtifact(
        router=router,
        threshold=calibrate_threshold(router.train_scores, share),
        strong_share=share,
        embedder=embedder.name,
        embedder_dim=embedder.dim,
        weak=args.weak,
        strong=args.strong,
        config=config,
    )
    npz_path, json_path = save_artifact(artifact, args.out)
    print(
        f"trained on {len(data)} rows of {source}; strong share {share:.3f}, "
        f"threshold {artifact.threshold:.4f}"
    )
    print(f"wrote {npz_path} ({npz_path.stat().st_size / 1e6:.1f} MB) and {json_path}")
    return 0


def router_command(args: argparse.Namespace) -> int:
    try:
        return _eval(args) if args.router_command == "eval" else _train(args)
    except (OSError, ValueError) as exc:
        print(f"costwarden router: {exc}", file=sys.stderr)
        return 2
