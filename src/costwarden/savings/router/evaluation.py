"""``router eval``: fit on the train split, judge on the held-out split, beside baselines.

Everything is fitted on the training rows only; the evaluation rows are scored once. Two kinds
of numbers come out:

- threshold-free curve numbers (PGR, APGR, CPT) per router, as the field reports them: they
  say how well a router *orders* the evaluation prompts;
- operating points: a threshold calibrated on the training rows' out-of-fold scores for a
  target share of strong calls, applied to the evaluation rows, with the share and accuracy
  it actually gets there. ``auto`` picks the share that reaches 95 % of the strong model's
  accuracy on the training rows; this is what a deployment would do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from costwarden.savings.embedding import Embedder
from costwarden.savings.router.baselines import group_prior_scores, lexical_scores
from costwarden.savings.router.cache import cached_embeddings
from costwarden.savings.router.data import RoutingData, split_mask
from costwarden.savings.router.metrics import (
    Curve,
    Summary,
    accuracy_curve,
    oracle_curve,
    random_curve,
    share_for_strong_fraction,
    summarise,
)
from costwarden.savings.router.model import (
    FittedRouter,
    RouterTrainConfig,
    calibrate_threshold,
    fit_router,
)
from costwarden.savings.router.tail import tail_vectors

Floats = npt.NDArray[np.float64]
Vectors = npt.NDArray[np.float32]
ROUTER = "learned router"
LEXICAL = "TF-IDF logistic"
PRIOR = "per-group prior"
RANDOM = "random"
ORACLE = "oracle"
STRONG_FRACTION = 0.95


class EvalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0  # the split's hash salt
    eval_share: float = Field(default=0.3, gt=0, lt=1)
    targets: tuple[float, ...] = (0.2, 0.35, 0.5)  # strong shares to calibrate on train
    baselines: bool = True
    config: RouterTrainConfig = RouterTrainConfig()


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    target: str  # "0.35" or "auto"
    train_share: float  # strong share the threshold gives on training rows (out of fold)
    threshold: float
    eval_share: float
    eval_accuracy: float


@dataclass(frozen=True, slots=True)
class EvalReport:
    train_rows: int
    eval_rows: int
    weak_accuracy: float
    strong_accuracy: float
    curves: dict[str, Curve]
    summaries: dict[str, Summary]
    points: list[OperatingPoint]


def embed_data(embedder: Embedder, data: RoutingData, cache_dir: Path | None) -> Vectors:
    return cached_embeddings(embedder, data.prompts, cache_dir)


def embed_tails(
    embedder: Embedder, data: RoutingData, vectors: Vectors, cache_dir: Path | None
) -> Vectors:
    """The prompts' tail embeddings (``router_tail``): only long prompts are embedded again."""
    return tail_vectors(embedder, data.prompts, vectors, cache_dir)


def _operating_point(
    router: FittedRouter, eval_scores: Floats, evaluation: RoutingData, target: float, label: str
) -> OperatingPoint:
    threshold = calibrate_threshold(router.train_scores, target)
    routed = eval_scores >= threshold
    accuracy = np.where(routed, evaluation.strong, evaluation.weak)
    return OperatingPoint(
        target=label,
        train_share=float(np.mean(router.train_scores >= threshold)),
        threshold=threshold,
        eval_share=float(np.mean(routed)),
        eval_accuracy=float(np.mean(accuracy)),
    )


def auto_share(router: FittedRouter, train: RoutingData) -> float:
    """The fewest strong calls reaching 95 % of strong accuracy on out-of-fold train scores."""
    curve = accuracy_curve(router.train_scores, train.weak, train.strong)
    share = share_for_strong_fraction(curve, STRONG_FRACTION)
    return 1.0 if share is None else share


def _scores(
    train: RoutingData,
    evaluation: RoutingData,
    vectors: tuple[Vectors, Vectors],
    tails: tuple[Vectors, Vectors],
    opts: EvalOptions,
) -> tuple[FittedRouter, dict[str, Floats]]:
    router = fit_router(
        vectors[0], train.prompts, train.weak, train.strong, opts.config, tails=tails[0]
    )
    scores = {ROUTER: router.score(vectors[1], evaluation.prompts, tails[1])}
    if opts.baselines:
        scores[LEXICAL] = lexical_scores(
            train, evaluation.prompts, columns=opts.config.lexical_columns
        )
        scores[PRIOR] = group_prior_scores(train, evaluation.groups)
    return router, scores


def evaluate(
    data: RoutingData, vectors: Vectors, opts: EvalOptions, tails: Vectors | None = None
) -> EvalReport:
    """Split, fit, score, summarise. ``vectors`` are ``data``'s prompt embeddings, ``tails``
    their tail embeddings (``embed_tails``; ``None``: the prompts are all short)."""
    tails = vectors if tails is None else tails
    mask = split_mask(data.prompts, opts.seed, opts.eval_share)
    train, evaluation = data.take(~mask), data.take(mask)
    if len(train) < opts.config.folds or len(evaluation) == 0:
        raise ValueError(f"too few rows to split: {len(train)} train, {len(evaluation)} eval")
    router, scores = _scores(
        train, evaluation, (vectors[~mask], vectors[mask]), (tails[~mask], tails[mask]), opts
    )
    curves = {
        name: accuracy_curve(values, evaluation.weak, evaluation.strong)
        for name, values in scores.items()
    }
    curves[RANDOM] = random_curve(evaluation.weak, evaluation.strong)
    curves[ORACLE] = oracle_curve(evaluation.weak, evaluation.strong)
    points = [
        _operating_point(router, scores[ROUTER], evaluation, t, f"{t:g}") for t in opts.targets
    ]
    points.append(
        _operating_point(router, scores[ROUTER], evaluation, auto_share(router, train), "auto")
    )
    return EvalReport(
        train_rows=len(train),
        eval_rows=len(evaluation),
        weak_accuracy=curves[RANDOM].weak,
        strong_accuracy=curves[RANDOM].strong,
        curves=curves,
        summaries={name: summarise(curve) for name, curve in curves.items()},
        points=points,
    )


def _pct(value: float | None) -> str:
    return "never" if value is None else f"{100 * value:5.1f} %"


def render_table(report: EvalReport) -> str:
    goal = STRONG_FRACTION * report.strong_accuracy
    lines = [
        f"rows: {report.train_rows} train, {report.eval_rows} eval (held out)",
        f"weak accuracy {_pct(report.weak_accuracy)}   strong accuracy "
        f"{_pct(report.strong_accuracy)}   95 % of strong = {_pct(goal)}",
        "",
        f"{'router':<18} {'APGR':>6} {'CPT(50%)':>9} {'CPT(80%)':>9} {'CPT(95%)':>9} "
        f"{'strong calls for 95% of strong acc':>36}",
    ]
    for name, summary in report.summaries.items():
        lines.append(
            f"{name:<18} {summary.apgr:6.3f} {_pct(summary.cpt50):>9} {_pct(summary.cpt80):>9} "
            f"{_pct(summary.cpt95):>9} {_pct(summary.share_95pct_strong):>36}"
        )
    lines += [
        "",
        "learned router, threshold calibrated on train (out-of-fold scores):",
        f"{'target':>8} {'train share':>12} {'threshold':>10} {'eval share':>11} "
        f"{'eval acc':>9} {'% of strong':>12}",
    ]
    for p in report.points:
        lines.append(
            f"{p.target:>8} {_pct(p.train_share):>12} {p.threshold:10.4f} "
            f"{_pct(p.eval_share):>11} {_pct(p.eval_accuracy):>9} "
            f"{_pct(p.eval_accuracy / report.strong_accuracy):>12}"
        )
    return "\n".join(lines)


def report_json(report: EvalReport, source: str, opts: EvalOptions) -> dict[str, Any]:
    return {
        "source": source,
        "split": {"seed": opts.seed, "eval_share": opts.eval_share, "by": "sha256(seed:prompt)"},
        "train_rows": report.train_rows,
        "eval_rows": report.eval_rows,
        "weak_accuracy": report.weak_accuracy,
        "strong_accuracy": report.strong_accuracy,
        "config": opts.config.model_dump(),
        "routers": {name: s.as_dict() for name, s in report.summaries.items()},
        "operating_points": [
            {
                "target": p.target,
                "train_share": p.train_share,
                "threshold": p.threshold,
                "eval_share": p.eval_share,
                "eval_accuracy": p.eval_accuracy,
            }
            for p in report.points
        ],
    }
