"""Seeded labelled hourly spend series: the ground truth the anomaly detector is measured on.

Each series is one scope's hourly spend: a level (log-uniform, dollars per hour) × a daily shape
(night trough, afternoon peak) × a weekly shape (quiet weekends) × compound growth × lognormal
noise. Incidents are multiplied in: spikes (2–10×, 1–3 h), level shifts (1.8–3×, 1–4 days) and
slow creep (a linear ramp to 2–3.5× over 1–3 days, then held half a day). Every hour is also split
into twelve five-minute buckets with bursty (Dirichlet) weights, so a detector running every five
minutes sees the partial hour as it would live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from costwarden.monitor.anomaly import HOURS_PER_DAY, HOURS_PER_WEEK

Kind = Literal["spike", "level_shift", "creep"]
KINDS: tuple[Kind, ...] = ("spike", "level_shift", "creep")
STEPS_PER_HOUR = 12
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LabelledIncident:
    """An injected incident: hours [start, end), and its largest hourly excess in dollars."""

    kind: Kind
    start: int
    end: int
    magnitude: float
    peak_excess: float


@dataclass(frozen=True, slots=True)
class LabelledSeries:
    """One scope's hourly values, cumulative five-minute partials and injected incidents."""

    scope: str
    values: FloatArray
    partials: FloatArray
    incidents: tuple[LabelledIncident, ...]


@dataclass(frozen=True, slots=True)
class SeriesShape:
    """How long the series are and where incidents may go."""

    warmup_hours: int = 5 * HOURS_PER_WEEK
    eval_hours: int = 8 * HOURS_PER_WEEK
    incidents: int = 6
    noise: float = 0.10
    burst_shape: float = 4.0


def _clean(rng: np.random.Generator, hours: int, level: float, noise: float) -> FloatArray:
    """Seasonal, trending, noisy spend without incidents."""
    t = np.arange(hours)
    hour_of_day = t % HOURS_PER_DAY
    day_of_week = (t // HOURS_PER_DAY) % 7
    daily = 0.3 + np.exp(-0.5 * ((hour_of_day - rng.uniform(12, 16)) / 3.5) ** 2)
    weekly = np.where(day_of_week >= 5, rng.uniform(0.35, 0.7), 1.0)
    growth = (1 + rng.uniform(-0.03, 0.08)) ** (t / HOURS_PER_WEEK)
    jitter = rng.lognormal(0.0, noise, hours)
    return np.asarray(level * daily * weekly * growth * jitter)


def _multiplier(rng: np.random.Generator, kind: Kind) -> tuple[FloatArray, float]:
    """The incident's hour-by-hour multiplier, and its headline magnitude."""
    if kind == "spike":
        magnitude = float(np.exp(rng.uniform(np.log(2), np.log(10))))
        return np.full(int(rng.integers(1, 4)), magnitude), magnitude
    if kind == "level_shift":
        magnitude = float(rng.uniform(1.8, 3.0))
        return np.full(int(rng.integers(24, 97)), magnitude), magnitude
    magnitude = float(rng.uniform(2.0, 3.5))
    ramp = np.linspace(1.0, magnitude, int(rng.integers(24, 73)) + 1)[1:]
    return np.concatenate([ramp, np.full(12, magnitude)]), magnitude


def _inject(rng: np.random.Generator, clean: FloatArray, shape: SeriesShape
            ) -> tuple[FloatArray, tuple[LabelledIncident, ...]]:
    """Place ``shape.incidents`` incidents in separate slots of the evaluation span."""
    values = clean.copy()
    slot = shape.eval_hours // shape.incidents
    labels = []
    for i in range(shape.incidents):
        kind = KINDS[int(rng.integers(len(KINDS)))]
        mult, magnitude = _multiplier(rng, kind)
        room = max(slot - len(mult) - 24, 1)
        start = shape.warmup_hours + i * slot + int(rng.integers(room))
        end = min(start + len(mult), len(values))
        values[start:end] = clean[start:end] * mult[: end - start]
        excess = float(np.max(values[start:end] - clean[start:end]))
        labels.append(LabelledIncident(kind, start, end, magnitude, excess))
    return values, tuple(labels)


def _partials(rng: np.random.Generator, values: FloatArray, burst_shape: float) -> FloatArray:
    """Cumulative totals after each five-minute step: shape (hours, 12), last column = values."""
    weights = rng.dirichlet(np.full(STEPS_PER_HOUR, burst_shape), size=len(values))
    return np.asarray(np.cumsum(weights, axis=1) * values[:, None])


def generate(seed: int, scopes: int, shape: SeriesShape, *, inject: bool = True
             ) -> list[LabelledSeries]:
    """``scopes`` seeded series; ``inject=False`` gives the same kind of traffic, all normal.

    One scope in five is tiny (well under a dollar an hour at its trough): its incidents are
    real but immaterial, which is what the absolute floor is for.
    """
    rng = np.random.default_rng(seed)
    hours = shape.warmup_hours + shape.eval_hours
    out = []
    for n in range(scopes):
        tiny = n % 5 == 4
        level = float(np.exp(rng.uniform(np.log(0.2), np.log(2)) if tiny
                             else rng.uniform(np.log(10), np.log(300))))
        clean = _clean(rng, hours, level, shape.noise)
        values, labels = _inject(rng, clean, shape) if inject else (clean, ())
        out.append(LabelledSeries(f"scope-{n}", values,
                                  _partials(rng, values, shape.burst_shape), labels))
    return out
