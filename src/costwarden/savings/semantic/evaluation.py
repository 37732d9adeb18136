"""Evaluation of the semantic cache on STS-B (human-scored sentence pairs).

A pair scored >= 4.0 (strict: >= 4.5) is "the same question": a hit there is right. A pair
scored <= 3.0 is "different": a hit there serves a wrong answer (a false hit). For each cosine
threshold we report both rates, for plain cosine and for cosine + the second-stage check, and
the Spearman correlation of cosine with the score. The default threshold is the one with the
highest hit rate and at most ``MAX_FALSE_HIT`` false hits on *train*; dev only reports it.

Embeddings of a whole split are cached on disk (``.npy`` keyed by the model name and a hash of
the texts): the MiniLM pass over train takes about a minute on one core.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from costwarden.savings.embedding import Embedder, MiniLMEmbedder, Vectors
from costwarden.savings.semantic.check import (
    CheckModel,
    Matrix,
    SecondStageCheck,
    fit_logistic,
)
from costwarden.savings.semantic.text import FEATURE_NAMES, Profile, pair_features, profile

SAME = 4.0
STRICT_SAME = 4.5
DIFFERENT = 3.0
MAX_FALSE_HIT = 0.01
# Steps of 0.01: at 0.02 the best plain-cosine threshold fell between two rows.
THRESHOLDS: tuple[float, ...] = tuple(round(0.50 + 0.01 * i, 2) for i in range(50))
_PROBABILITY_GRID = tuple(round(0.50 + 0.005 * i, 3) for i in range(100))
CV_FOLDS = 5

Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Pair:
    first: str
    second: str
    score: float


@dataclass(frozen=True, slots=True)
class Rates:
    hit: float  # share of same-meaning pairs (score >= 4.0) that hit
    strict_hit: float  # share of score >= 4.5 pairs that hit
    false_hit: float  # share of different pairs (score <= 3.0) that hit

    def as_dict(self) -> dict[str, float]:
        return {"hit": self.hit, "strict_hit": self.strict_hit, "false_hit": self.false_hit}


@dataclass(slots=True)
class Split:
    """One split with what every threshold needs, computed once."""

    name: str
    pairs: list[Pair]
    scores: npt.NDArray[np.float64]
    cosine: npt.NDArray[np.float64]
    features: Matrix
    numbers_differ: Mask

    @property
    def same(self) -> Mask:
        return self.scores >= SAME

    @property
    def different(self) -> Mask:
        return self.scores <= DIFFERENT


def load_pairs(path: Path) -> list[Pair]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [Pair(a, b, float(score)) for a, b, score in csv.reader(handle)]


def cached_embeddings(embedder: Embedder, texts: Sequence[str], cache_dir: Path) -> Vectors:
    digest = hashlib.sha256(embedder.name.encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    path = cache_dir / f"{digest.hexdigest()[:32]}.npy"
    if path.is_file():
        cached: Vectors = np.load(path)
        return cached
    if isinstance(embedder, MiniLMEmbedder):
        vectors = embedder.embed_batched(texts)
    else:
        vectors = embedder.embed(texts)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def build_split(name: str, pairs: list[Pair], vectors: Vectors) -> Split:
    """``vectors``: the first sentences' rows, then the second sentences' rows."""
    n = len(pairs)
    cosine = np.einsum("ij,ij->i", vectors[:n], vectors[n:]).astype(np.float64)
    rows = []
    differ = []
    for pair, cos in zip(pairs, cosine, strict=True):
        a, b = profile(pair.first), profile(pair.second)
        rows.append(pair_features(a, b, float(cos)))
        differ.append(a.numbers != b.numbers)
    return Split(
        name=name,
        pairs=pairs,
        scores=np.asarray([p.score for p in pairs], dtype=np.float64),
        cosine=cosine,
        features=np.asarray(rows, dtype=np.float64).reshape(n, len(FEATURE_NAMES)),
        numbers_differ=np.asarray(differ, dtype=bool),
    )


def embed_split(name: str, pairs: list[Pair], embedder: Embedder, cache_dir: Path) -> Split:
    texts = [p.first for p in pairs] + [p.second for p in pairs]
    return build_split(name, pairs, cached_embeddings(embedder, texts, cache_dir))


def rates(accepted: Mask, scores: npt.NDArray[np.float64]) -> Rates:
    def share(mask: Mask) -> float:
        return float(accepted[mask].mean()) if mask.any() else 0.0

    return Rates(share(scores >= SAME), share(scores >= STRICT_SAME), share(scores <= DIFFERENT))


def _ranks(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Ranks with ties averaged, as Spearman's rho needs."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values), dtype=np.float64)
    uniques, inverse = np.unique(values, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks, minlength=len(uniques))
    counts = np.bincount(inverse, minlength=len(uniques))
    result: npt.NDArray[np.float64] = (sums / counts)[inverse]
    return result


def spearman(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> float:
    return float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])


def check_accepts(split: Split, model: CheckModel | None, require_same_numbers: bool) -> Mask:
    """Which pairs the second stage lets through (before the cosine threshold)."""
    accepted = np.ones(len(split.pairs), dtype=bool)
    if require_same_numbers:
        accepted &= ~split.numbers_differ
    if model is not None:
        accepted &= model.probabilities(split.features) >= model.min_probability
    return accepted


def sweep(split: Split, gate: Mask | None, thresholds: Sequence[float]) -> list[Rates]:
    passed = gate if gate is not None else np.ones(len(split.pairs), dtype=bool)
    return [rates((split.cosine >= t) & passed, split.scores) for t in thresholds]


def best_threshold(
    thresholds: Sequence[float], table: Sequence[Rates], max_false_hit: float = MAX_FALSE_HIT
) -> float | None:
    """The threshold with the highest hit rate whose false-hit rate is within the limit."""
    allowed = [
        (r.hit, t) for t, r in zip(thresholds, table, strict=True) if r.false_hit <= max_false_hit
    ]
    return max(allowed)[1] if allowed else None


def _fit(train: Split, rows: Mask) -> CheckModel:
    """The logistic model fitted on the clear pairs (same or different) among ``rows``."""
    clear = rows & (train.same | train.different)
    mean, scale, bias, weights = fit_logistic(
        train.features[clear], train.same[clear].astype(np.float64)
    )
    return CheckModel(
        features=FEATURE_NAMES,
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        weights=tuple(float(v) for v in weights),
        bias=bias,
        min_probability=0.5,
        trained_on=f"STS-B train ({len(train.pairs)} pairs; score>={SAME} vs <={DIFFERENT})",
    )


def cross_validated_probabilities(train: Split, folds: int = CV_FOLDS) -> npt.NDArray[np.float64]:
    """Each train pair's probability from a model fitted on the other folds (seeded split)."""
    fold = np.random.default_rng(0).permutation(len(train.pairs)) % folds
    out = np.zeros(len(train.pairs), dtype=np.float64)
    for k in range(folds):
        held_out = fold == k
        out[held_out] = _fit(train, ~held_out).probabilities(train.features[held_out])
    return out


def fit_check_model(train: Split, require_same_numbers: bool = True) -> CheckModel:
    """Fit on train's clear pairs; pick the probability cut that, with the best cosine
    threshold, gives the most hits at <= 1 % false hits on train's *cross-validated*
    probabilities (in-sample ones are optimistic: the cut would let more false hits through)."""
    model = _fit(train, np.ones(len(train.pairs), dtype=bool))
    held_out = cross_validated_probabilities(train)
    numbers = ~train.numbers_differ if require_same_numbers else np.ones(len(train.pairs), bool)
    best: tuple[float, float] = (-1.0, 0.5)
    for cut in _PROBABILITY_GRID:
        table = sweep(train, numbers & (held_out >= cut), THRESHOLDS)
        chosen = best_threshold(THRESHOLDS, table)
        if chosen is not None:
            hit = table[THRESHOLDS.index(chosen)].hit
            best = max(best, (hit, cut))
    return _with_cut(model, best[1])


def _with_cut(model: CheckModel, cut: float) -> CheckModel:
    return CheckModel(
        model.features, model.mean, model.scale, model.weights, model.bias, cut, model.trained_on
    )


def judge_pair(check: SecondStageCheck, pair: Pair, cosine: float) -> bool:
    """The live check on one pair (what the cache runs), for tests against ``check_accepts``."""
    first: Profile = profile(pair.first)
    return check.judge(first, profile(pair.second), cosine).accepted


def report(
    train: Split, dev: Split, model: CheckModel, require_same_numbers: bool = True
) -> dict[str, Any]:
    """Everything the command prints and writes, as plain JSON-able data."""
    out: dict[str, Any] = {"thresholds": list(THRESHOLDS), "model": model.trained_on}
    defaults: dict[str, Any] = {}
    for arm, use_check in (("cosine", False), ("cosine+check", True)):
        per_split = {}
        for split in (train, dev):
            gate = check_accepts(split, model, require_same_numbers) if use_check else None
            per_split[split.name] = sweep(split, gate, THRESHOLDS)
        chosen = best_threshold(THRESHOLDS, per_split[train.name])
        out[arm] = {name: [r.as_dict() for r in table] for name, table in per_split.items()}
        defaults[arm] = {
            "threshold": chosen,
            **{
                name: table[THRESHOLDS.index(chosen)].as_dict() if chosen is not None else None
                for name, table in per_split.items()
            },
        }
    out["default"] = defaults
    out["spearman"] = {s.name: spearman(s.cosine, s.scores) for s in (train, dev)}
    out["counts"] = {
        s.name: {
            "pairs": len(s.pairs),
            "same": int(s.same.sum()),
            "strict_same": int((s.scores >= STRICT_SAME).sum()),
            "different": int(s.different.sum()),
        }
        for s in (train, dev)
    }
    out["check_min_probability"] = model.min_probability
    out["require_same_numbers"] = require_same_numbers
    return out
