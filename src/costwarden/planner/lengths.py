"""Token-length distributions as exact probability tables over integer lengths.

Spelled ``fixed:N``, ``uniform:LOW,HIGH`` (every integer equally likely), ``lognormal:MEDIAN,
SIGMA[,CAP]`` (discretised, mass above CAP moved onto CAP: a ``max_tokens`` cut-off), or a list
of observed lengths (the ledger's, or ``values:1,5,9``). Exact tables make the order statistics
padding needs (the expected longest of B requests) a sum, not a simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
LengthSource = str | tuple[int, ...] | list[int]
_TAIL = 1e-6  # lognormal: stop the table where this much mass is left (unless capped)


@dataclass(frozen=True)
class LengthDistribution:
    values: IntArray  # sorted, distinct
    probs: FloatArray  # same length, sums to 1
    label: str

    @property
    def mean(self) -> float:
        return float(np.dot(self.values, self.probs))

    @property
    def max(self) -> int:
        return int(self.values[-1])

    def expected_max(self, draws: int) -> float:
        """E[max of ``draws`` independent lengths] = Σ v_k · (F(v_k)^B − F(v_{k−1})^B)."""
        cdf = np.cumsum(self.probs)
        cdf[-1] = 1.0
        previous = np.concatenate(([0.0], cdf[:-1]))
        return float(np.dot(self.values, cdf**draws - previous**draws))

    def truncated(self, cap: int) -> LengthDistribution:
        """Lengths above ``cap`` become ``cap`` (prompt truncation, max_tokens)."""
        keep = self.values < cap
        values = np.append(self.values[keep], cap).astype(np.int64)
        probs = np.append(self.probs[keep], self.probs[~keep].sum())
        if probs[-1] == 0:
            values, probs = values[:-1], probs[:-1]
        return LengthDistribution(values, probs, f"{self.label}, truncated at {cap}")

    def sample(self, rng: np.random.Generator, size: int) -> IntArray:
        return rng.choice(self.values, size=size, p=self.probs).astype(np.int64)


def parse_lengths(spec: LengthSource) -> LengthDistribution:
    if not isinstance(spec, str):
        return empirical([int(v) for v in spec])
    kind, _, args = spec.partition(":")
    numbers = [float(a) for a in args.split(",") if a.strip()] if args else []
    kind = kind.strip().lower()
    if kind == "fixed" and len(numbers) == 1:
        return fixed(int(numbers[0]))
    if kind == "uniform" and len(numbers) == 2:
        return uniform(int(numbers[0]), int(numbers[1]))
    if kind == "lognormal" and len(numbers) in (2, 3):
        cap = int(numbers[2]) if len(numbers) == 3 else None
        return lognormal(numbers[0], numbers[1], cap)
    if kind == "values" and numbers:
        return empirical([int(n) for n in numbers])
    raise ValueError(
        f"bad length distribution {spec!r}: use fixed:N, uniform:LOW,HIGH, "
        "lognormal:MEDIAN,SIGMA[,CAP] or values:A,B,…"
    )


def fixed(length: int) -> LengthDistribution:
    _positive(length)
    return LengthDistribution(np.array([length], np.int64), np.array([1.0]), f"fixed {length}")


def uniform(low: int, high: int) -> LengthDistribution:
    _positive(low)
    if high < low:
        raise ValueError("uniform lengths need LOW <= HIGH")
    values = np.arange(low, high + 1, dtype=np.int64)
    probs = np.full(values.size, 1.0 / values.size)
    return LengthDistribution(values, probs, f"uniform {low}..{high}")


def lognormal(median: float, sigma: float, cap: int | None = None) -> LengthDistribution:
    if median <= 0 or sigma <= 0:
        raise ValueError("lognormal lengths need MEDIAN > 0 and SIGMA > 0")
    mu = math.log(median)
    limit = cap or math.ceil(median * math.exp(sigma * 4.8))  # P(Z > 4.8) ≈ 8e-7
    values = np.arange(1, limit + 1, dtype=np.int64)
    edges = np.log(np.append(values - 0.5, limit + 0.5))
    cdf = 0.5 * (1 + _erf((edges - mu) / (sigma * math.sqrt(2))))
    probs = np.diff(cdf)
    probs[0] += cdf[0]  # lengths below 1 round up to 1
    probs[-1] += 1 - cdf[-1]  # the tail past the table (or the cap) lands on the last length
    label = f"lognormal median {median:g}, σ {sigma:g}" + (f", cap {cap}" if cap else "")
    distribution = LengthDistribution(values, probs / probs.sum(), label)
    if cap is None:
        keep = np.cumsum(distribution.probs) < 1 - _TAIL
        last = int(keep.sum()) + 1
        table = distribution.truncated(int(values[min(last, values.size - 1)]))
        return LengthDistribution(table.values, table.probs, label)
    return distribution


def empirical(lengths: list[int]) -> LengthDistribution:
    if not lengths:
        raise ValueError("no lengths to build a distribution from")
    values, counts = np.unique(np.asarray(lengths, dtype=np.int64), return_counts=True)
    if values[0] < 0:
        raise ValueError("lengths cannot be negative")
    probs = counts / counts.sum()
    return LengthDistribution(values, probs.astype(np.float64), f"{len(lengths)} observed lengths")


def _erf(x: FloatArray) -> FloatArray:
    return np.array([math.erf(v) for v in x], dtype=np.float64)


def _positive(length: int) -> None:
    if length < 1:
        raise ValueError("lengths must be at least 1")
