"""The semantic cache's second stage: is a candidate above the cosine threshold really the same
question?

A logistic model over ``semantic_text.FEATURE_NAMES`` (cosine plus lexical differences) gives
the probability that two queries mean the same; a candidate passes when it reaches
``min_probability``. Independently of the model, different numbers veto a hit by default:
"15 % of 80" and "15 % of 90" embed almost identically and have different answers.

The model is fitted on STS-B *train* only (``costwarden eval semantic-cache --fit``) and ships
as a few coefficients in ``data/semantic-check.json``; dev is never used to fit or to choose.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

from costwarden.savings.semantic.text import (
    FEATURE_NAMES,
    Profile,
    numbers_differ,
    pair_features,
)

MODEL_RESOURCE = "data/semantic-check.json"
_NEWTON_STEPS = 40

Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CheckModel:
    """Standardised logistic regression: p = σ(bias + Σ wᵢ·(xᵢ − meanᵢ)/scaleᵢ)."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    min_probability: float
    trained_on: str

    def probabilities(self, rows: Matrix) -> npt.NDArray[np.float64]:
        z = (rows - np.asarray(self.mean)) / np.asarray(self.scale)
        logits = self.bias + z @ np.asarray(self.weights)
        result: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-logits))
        return result

    def probability(self, features: Sequence[float]) -> float:
        logit = self.bias + sum(
            w * (x - m) / s
            for w, x, m, s in zip(self.weights, features, self.mean, self.scale, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-logit))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> CheckModel:
        data: dict[str, Any] = json.loads(text)
        model = cls(
            features=tuple(data["features"]),
            mean=tuple(data["mean"]),
            scale=tuple(data["scale"]),
            weights=tuple(data["weights"]),
            bias=float(data["bias"]),
            min_probability=float(data["min_probability"]),
            trained_on=str(data["trained_on"]),
        )
        if model.features != FEATURE_NAMES:
            raise ValueError("semantic check model was fitted on other features")
        return model


def shipped_model() -> CheckModel:
    text = resources.files("costwarden.savings").joinpath(MODEL_RESOURCE).read_text("utf-8")
    return CheckModel.from_json(text)


def fit_logistic(
    rows: Matrix, labels: npt.NDArray[np.float64], l2: float = 1e-2
) -> tuple[Matrix, Matrix, float, Matrix]:
    """Newton–Raphson on standardised features; returns (mean, scale, bias, weights)."""
    mean = rows.mean(axis=0)
    scale = rows.std(axis=0) + 1e-9
    design = np.c_[np.ones(len(rows)), (rows - mean) / scale]
    coef = np.zeros(design.shape[1])
    ridge = l2 * np.eye(len(coef))
    ridge[0, 0] = 0.0  # the intercept is not shrunk
    for _ in range(_NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-(design @ coef)))
        gradient = design.T @ (p - labels) + ridge @ coef
        hessian = (design * (p * (1 - p))[:, None]).T @ design + ridge
        coef -= np.linalg.solve(hessian, gradient)
    return mean, scale, float(coef[0]), coef[1:]


@dataclass(frozen=True, slots=True)
class Verdict:
    accepted: bool
    probability: float | None
    reason: str  # "ok", "numbers", "model"


class SecondStageCheck:
    """Rejects a cosine candidate whose meaning differs in ways cosine misses."""

    def __init__(
        self,
        model: CheckModel | None,
        *,
        require_same_numbers: bool = True,
        min_probability: float | None = None,
    ) -> None:
        self._model = model
        self._numbers = require_same_numbers
        self._min = (
            min_probability
            if min_probability is not None
            else (model.min_probability if model is not None else 0.0)
        )

    def judge(self, query: Profile, candidate: Profile, cosine: float) -> Verdict:
        if self._numbers and numbers_differ(query, candidate):
            return Verdict(False, None, "numbers")
        if self._model is None:
            return Verdict(True, None, "ok")
        p = self._model.probability(pair_features(query, candidate, cosine))
        return Verdict(p >= self._min, p, "ok" if p >= self._min else "model")
