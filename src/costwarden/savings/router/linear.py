"""Numpy-only logistic regression over dense rows or a small CSR matrix of our own.

The router's heads and the bag-of-words baseline are all L2-regularised logistic regressions;
no scipy / scikit-learn is needed (the gateway image stays small). The fit is full-batch Adam
on the mean log-loss, which converges in a few hundred steps on standardised features, and
accepts soft labels in [0, 1] (a benchmark may score partial credit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Csr:
    """Rows of (column, value) pairs: ``indptr[i]:indptr[i+1]`` slices row i."""

    indptr: Ints
    indices: Ints
    data: Floats
    n_cols: int

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    def row_ids(self) -> Ints:
        return np.repeat(np.arange(self.n_rows, dtype=np.int64), np.diff(self.indptr))

    def dot(self, weights: Floats) -> Floats:
        products = self.data * weights[self.indices]
        return np.bincount(self.row_ids(), weights=products, minlength=self.n_rows).astype(
            np.float64
        )

    def rdot(self, row_weights: Floats) -> Floats:
        """``X.T @ row_weights``."""
        per_entry = self.data * np.repeat(row_weights, np.diff(self.indptr))
        return np.bincount(self.indices, weights=per_entry, minlength=self.n_cols).astype(
            np.float64
        )


Matrix = Csr | Floats


def _matvec(x: Matrix) -> tuple[Callable[[Floats], Floats], Callable[[Floats], Floats], int]:
    if isinstance(x, Csr):
        return x.dot, x.rdot, x.n_cols
    dense = x
    return (lambda w: dense @ w), (lambda g: dense.T @ g), dense.shape[1]


def sigmoid(z: Floats) -> Floats:
    result: Floats = 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free form
    return result


@dataclass(frozen=True, slots=True)
class Logistic:
    weights: Floats
    bias: float

    def predict(self, x: Matrix) -> Floats:
        dot, _, _ = _matvec(x)
        return sigmoid(dot(self.weights) + self.bias)


def fit_logistic(
    x: Matrix,
    y: Floats,
    *,
    l2: float = 1e-3,
    steps: int = 300,
    learning_rate: float = 0.05,
    sample_weight: Floats | None = None,
) -> Logistic:
    """Minimise mean weighted log-loss + ``l2``/2·|w|² (the bias is not penalised)."""
    weight = np.ones(len(y)) if sample_weight is None else sample_weight
    fit = _Fit(l2, steps, learning_rate, weight / weight.sum())
    if isinstance(x, Csr):
        return _fit_sparse(x, y, fit)
    return _fit(x, y, fit)


@dataclass(frozen=True, slots=True)
class _Fit:
    l2: float
    steps: int
    learning_rate: float
    weight: Floats  # per row, summing to 1


def _fit_sparse(x: Csr, y: Floats, fit: _Fit) -> Logistic:
    # A column no training row uses keeps weight 0 under L2: fit only the used ones (hashed
    # bags of words use a few % of their columns), then scatter back.
    used, compact = np.unique(x.indices, return_inverse=True)
    small = Csr(x.indptr, compact.astype(np.int64), x.data, len(used))
    fitted = _fit(small, y, fit)
    weights = np.zeros(x.n_cols)
    weights[used] = fitted.weights
    return Logistic(weights, fitted.bias)


def _fit(x: Matrix, y: Floats, fit: _Fit) -> Logistic:
    dot, rdot, n_cols = _matvec(x)
    params = np.zeros(n_cols + 1)
    first = np.zeros_like(params)
    second = np.zeros_like(params)
    beta1, beta2 = 0.9, 0.999
    for step in range(1, fit.steps + 1):
        residual = (sigmoid(dot(params[:-1]) + params[-1]) - y) * fit.weight
        grad = np.concatenate((rdot(residual) + fit.l2 * params[:-1], [residual.sum()]))
        first = beta1 * first + (1 - beta1) * grad
        second = beta2 * second + (1 - beta2) * grad * grad
        corrected = first / (1 - beta1**step)
        scale = np.sqrt(second / (1 - beta2**step)) + 1e-8
        params -= fit.learning_rate * corrected / scale
    return Logistic(weights=params[:-1].copy(), bias=float(params[-1]))
