"""The learned router: P(weak right) and P(strong right) per prompt; route when the gap is big.

Routing to the strong model buys, in expectation, P(strong right) - P(weak right) accuracy, so
that difference is the score; the strong model is called when it exceeds a threshold. Four
cheap base heads each estimate both probabilities:

- ``knn``: the k most similar training prompts (MiniLM cosine) and how both models did on them;
- ``embed``: a logistic regression per model on the standardised embedding;
- ``lexical``: a logistic regression per model on hashed TF-IDF words and bigrams;
- ``tail``: a logistic regression per model on the standardised embedding of the prompt's
  *tail* (``router_tail.py``): MiniLM reads only the first 256 tokens, and a long prompt's
  question and answer choices come last (a short prompt's tail vector is its head vector);

and a stacker (one small logistic regression per model over the heads' log-odds and the
prompt's log length) combines them. The stacker learns from out-of-fold head outputs on the
training rows, so it weighs each head by how well it generalises, not how well it memorises
(kNN recalls its own training rows perfectly). The same out-of-fold scores calibrate the
threshold, so nothing is ever tuned on evaluation rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from costwarden.savings.router.knn import KnnHead, KnnSettings
from costwarden.savings.router.lexical import TfIdf
from costwarden.savings.router.linear import Logistic, fit_logistic

Floats = npt.NDArray[np.float64]
Vectors = npt.NDArray[np.float32]
_EPS = 1e-4


class RouterTrainConfig(BaseModel):
    """How ``costwarden router train`` fits a router (defaults chosen on MMLU's train rows)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    knn_k: int = Field(default=64, ge=1)
    knn_temperature: float = Field(default=0.1, gt=0)
    knn_prior: float = Field(default=0.1, ge=0)
    embed_l2: float = Field(default=1e-2, ge=0)
    lexical: bool = True  # the TF-IDF head; off: a smaller artifact, embeddings only
    lexical_columns: int = Field(default=1 << 18, ge=16)
    lexical_l2: float = Field(default=1e-4, ge=0)
    tail: bool = True  # the tail-embedding head (router_tail.py)
    tail_l2: float = Field(default=1e-2, ge=0)
    stack_l2: float = Field(default=1e-3, ge=0)
    folds: int = Field(default=5, ge=2)
    seed: int = 0
    steps: int = Field(default=300, ge=1)


@dataclass(frozen=True, slots=True)
class PairHead:
    """Two logistic regressions over one feature space: weak right, strong right."""

    weak: Logistic
    strong: Logistic


def _logit(p: Floats) -> Floats:
    clipped = np.clip(p, _EPS, 1 - _EPS)
    result: Floats = np.log(clipped / (1 - clipped))
    return result


@dataclass(frozen=True, slots=True)
class Standardiser:
    mean: Floats
    scale: Floats

    @classmethod
    def fit(cls, rows: Floats) -> Standardiser:
        return cls(mean=rows.mean(axis=0), scale=rows.std(axis=0) + 1e-6)

    def apply(self, rows: Floats | Vectors) -> Floats:
        result: Floats = (np.asarray(rows, dtype=np.float64) - self.mean) / self.scale
        return result


@dataclass(frozen=True, slots=True)
class BaseHeads:
    """The base heads fitted on one set of training rows."""

    knn: KnnHead
    embed_scale: Standardiser
    embed: PairHead
    tfidf: TfIdf | None
    lexical: PairHead | None
    tail_scale: Standardiser | None = None
    tail: PairHead | None = None

    def features(
        self, vectors: Vectors, prompts: Sequence[str], tails: Vectors | None = None
    ) -> Floats:
        """Per row: log-odds of each head's two probabilities, then log length.

        ``tails`` are the prompts' tail embeddings (``router_tail.tail_vectors``); ``None``
        stands for ``vectors``, right for prompts without a tail of their own.
        """
        knn_weak, knn_strong = self.knn.predict(vectors)
        z = self.embed_scale.apply(vectors)
        columns = [knn_weak, knn_strong, self.embed.weak.predict(z), self.embed.strong.predict(z)]
        if self.tfidf is not None and self.lexical is not None:
            rows = self.tfidf.transform(prompts)
            columns += [self.lexical.weak.predict(rows), self.lexical.strong.predict(rows)]
        if self.tail_scale is not None and self.tail is not None:
            zt = self.tail_scale.apply(vectors if tails is None else tails)
            columns += [self.tail.weak.predict(zt), self.tail.strong.predict(zt)]
        logits = [_logit(c) for c in columns]
        length = np.log1p(np.asarray([len(p) for p in prompts], dtype=np.float64))
        return np.column_stack([*logits, length])


def _pair(rows: Floats, weak: Floats, strong: Floats, l2: float, steps: int) -> PairHead:
    return PairHead(
        fit_logistic(rows, weak, l2=l2, steps=steps), fit_logistic(rows, strong, l2=l2, steps=steps)
    )


def fit_heads(
    vectors: Vectors,
    prompts: Sequence[str],
    weak: Floats,
    strong: Floats,
    cfg: RouterTrainConfig,
    *,
    tails: Vectors | None = None,
) -> BaseHeads:
    # The artifact stores neighbours as float16; score with exactly what will be stored.
    stored = vectors.astype(np.float16).astype(np.float32)
    knn = KnnHead(stored, weak, strong, KnnSettings(cfg.knn_k, cfg.knn_temperature, cfg.knn_prior))
    scale = Standardiser.fit(np.asarray(vectors, dtype=np.float64))
    z = scale.apply(vectors)
    embed = _pair(z, weak, strong, cfg.embed_l2, cfg.steps)
    tail_scale: Standardiser | None = None
    tail: PairHead | None = None
    if cfg.tail:
        tail_rows = np.asarray(vectors if tails is None else tails, dtype=np.float64)
        tail_scale = Standardiser.fit(tail_rows)
        tail = _pair(tail_scale.apply(tail_rows), weak, strong, cfg.tail_l2, cfg.steps)
    if not cfg.lexical:
        return BaseHeads(knn, scale, embed, None, None, tail_scale, tail)
    tfidf = TfIdf.fit(prompts, cfg.lexical_columns)
    rows = tfidf.transform(prompts)
    lexical = PairHead(
        fit_logistic(rows, weak, l2=cfg.lexical_l2, steps=cfg.steps, learning_rate=0.1),
        fit_logistic(rows, strong, l2=cfg.lexical_l2, steps=cfg.steps, learning_rate=0.1),
    )
    return BaseHeads(knn, scale, embed, tfidf, lexical, tail_scale, tail)


def fold_ids(n: int, folds: int, seed: int) -> npt.NDArray[np.int64]:
    """A seeded assignment of n rows to ``folds`` near-equal folds."""
    rng = np.random.default_rng(seed)
    return rng.permutation(np.arange(n) % folds).astype(np.int64)


def out_of_fold_features(
    vectors: Vectors,
    prompts: Sequence[str],
    weak: Floats,
    strong: Floats,
    cfg: RouterTrainConfig,
    *,
    tails: Vectors | None = None,
) -> Floats:
    """Each training row's head features from heads that never saw it."""
    tails = vectors if tails is None else tails
    folds = fold_ids(len(prompts), cfg.folds, cfg.seed)
    out: Floats | None = None
    for fold in range(cfg.folds):
        held = folds == fold
        kept = np.flatnonzero(~held)
        heads = fit_heads(
            vectors[kept],
            [prompts[int(i)] for i in kept],
            weak[kept],
            strong[kept],
            cfg,
            tails=tails[kept],
        )
        held_rows = np.flatnonzero(held)
        block = heads.features(
            vectors[held_rows], [prompts[int(i)] for i in held_rows], tails[held_rows]
        )
        if out is None:
            out = np.zeros((len(prompts), block.shape[1]))
        out[held_rows] = block
    assert out is not None  # folds >= 2, so the loop ran
    return out


@dataclass(frozen=True, slots=True)
class Stacker:
    scale: Standardiser
    head: PairHead

    @classmethod
    def fit(cls, features: Floats, weak: Floats, strong: Floats, cfg: RouterTrainConfig) -> Stacker:
        scale = Standardiser.fit(features)
        z = scale.apply(features)
        return cls(
            scale,
            PairHead(
                fit_logistic(z, weak, l2=cfg.stack_l2, steps=cfg.steps),
                fit_logistic(z, strong, l2=cfg.stack_l2, steps=cfg.steps),
            ),
        )

    def probabilities(self, features: Floats) -> tuple[Floats, Floats]:
        z = self.scale.apply(features)
        return self.head.weak.predict(z), self.head.strong.predict(z)

    def score(self, features: Floats) -> Floats:
        p_weak, p_strong = self.probabilities(features)
        return p_strong - p_weak


@dataclass(frozen=True, slots=True)
class FittedRouter:
    """Heads fitted on all training rows, the stacker, and the training rows' honest scores."""

    heads: BaseHeads
    stacker: Stacker
    train_scores: Floats  # out-of-fold: what a threshold is calibrated on

    def score(
        self, vectors: Vectors, prompts: Sequence[str], tails: Vectors | None = None
    ) -> Floats:
        """Scores; ``tails`` as in ``BaseHeads.features`` (``None``: no prompt is long)."""
        return self.stacker.score(self.heads.features(vectors, prompts, tails))


def fit_router(
    vectors: Vectors,
    prompts: Sequence[str],
    weak: Floats,
    strong: Floats,
    cfg: RouterTrainConfig,
    *,
    tails: Vectors | None = None,
) -> FittedRouter:
    features = out_of_fold_features(vectors, prompts, weak, strong, cfg, tails=tails)
    stacker = Stacker.fit(features, weak, strong, cfg)
    heads = fit_heads(vectors, prompts, weak, strong, cfg, tails=tails)
    return FittedRouter(heads, stacker, stacker.score(features))


def calibrate_threshold(train_scores: Floats, strong_share: float) -> float:
    """The score above which ``strong_share`` of the training rows go to the strong model."""
    if not 0.0 <= strong_share <= 1.0:
        raise ValueError("strong_share must be in [0, 1]")
    ordered = np.sort(train_scores)[::-1]
    k = round(strong_share * len(ordered))
    if k == 0:
        return float(np.nextafter(ordered[0], np.inf))
    # Midway between the last routed score and the next: robust to tiny score shifts.
    below = ordered[k] if k < len(ordered) else ordered[-1] - 1.0
    return float((ordered[k - 1] + below) / 2)
