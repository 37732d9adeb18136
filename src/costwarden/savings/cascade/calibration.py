"""Calibrating a cascade's thresholds from labelled data (FrugalGPT-style quantile search).

Input: per query, for every tier in cascade order, the score the scorer gave that tier's
answer, whether the answer was right, and what the call cost. JSONL, one query a line::

    {"id": "q1", "tiers": [{"model": "gpt-4o-mini", "score": 0.81, "correct": true,
                            "cost": 0.00002}, {"model": "gpt-4o", "correct": true, ...}]}

or CSV with columns ``id``, ``model_<i>``, ``score_<i>``, ``correct_<i>``, ``cost_<i>`` (i from
0). The last tier's score is not used: it is always accepted.

Search: each tier below the top gets a candidate threshold at evenly spaced quantiles of its
scores, plus "skip" (the tier is not called at all — calling a tier whose answer is never
accepted only adds cost). Every combination is simulated: a query pays each tier it reaches
and takes the answer of the first tier whose score reaches its threshold. Of the simulated
(cost, accuracy) points, the Pareto frontier is kept; the chosen point is the most accurate
within a budget per query, or the cheapest reaching a target accuracy. Thresholds are chosen
on the training rows and reported on held-out rows (a seeded split by hash of the id).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from costwarden.savings.router.data import split_mask

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
SKIP = math.inf  # a threshold no score reaches, read as: this tier is not called
_TRUE = {"true", "yes", "1", "1.0"}


@dataclass(frozen=True, slots=True)
class Labelled:
    """Aligned (queries × tiers) columns of a calibration file."""

    models: tuple[str, ...]
    ids: tuple[str, ...]
    scores: Floats
    correct: Floats
    costs: Floats

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, mask: Bools) -> Labelled:
        rows = np.flatnonzero(mask)
        ids = tuple(self.ids[i] for i in rows)
        return Labelled(self.models, ids, self.scores[rows], self.correct[rows], self.costs[rows])


@dataclass(frozen=True, slots=True)
class Point:
    """A threshold per tier below the top (``SKIP``: not called), and what it gives."""

    thresholds: tuple[float, ...]
    accuracy: float
    cost: float  # mean per query

    def as_dict(self) -> dict[str, Any]:
        shown = [None if t == SKIP else round(t, 6) for t in self.thresholds]
        return {"thresholds": shown, "accuracy": self.accuracy, "cost": self.cost}


def _flag(value: Any) -> float:
    if isinstance(value, bool | int | float):
        return float(value)
    return 1.0 if str(value).strip().lower() in _TRUE else 0.0


def _from_rows(rows: Sequence[tuple[str, Sequence[dict[str, Any]]]]) -> Labelled:
    if not rows:
        raise ValueError("no calibration rows")
    first = rows[0][1]
    models = tuple(str(t.get("model") or f"tier{i}") for i, t in enumerate(first))
    if len(models) < 2 or any(len(tiers) != len(models) for _, tiers in rows):
        raise ValueError("every row needs the same tiers, at least two")

    def column(name: str, convert: Any) -> Floats:
        cells = [[convert(t.get(name, 0.0)) for t in tiers] for _, tiers in rows]
        return np.asarray(cells, dtype=np.float64)

    return Labelled(
        models,
        tuple(r[0] for r in rows),
        column("score", float),
        column("correct", _flag),
        column("cost", float),
    )


def load_labelled(path: Path) -> Labelled:
    """Read a JSONL or CSV calibration file (see the module docstring)."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            return _from_rows([_csv_row(n, row) for n, row in enumerate(csv.DictReader(handle))])
    rows = []
    with path.open(encoding="utf-8") as handle:
        for n, line in enumerate(handle):
            if line.strip():
                item = json.loads(line)
                rows.append((str(item.get("id", n)), list(item["tiers"])))
    return _from_rows(rows)


def _csv_row(n: int, row: dict[str, str]) -> tuple[str, list[dict[str, Any]]]:
    tiers = []
    for i in itertools.count():
        if f"correct_{i}" not in row:
            break
        tier = {k: row.get(f"{k}_{i}") or 0 for k in ("score", "correct", "cost")}
        tiers.append({**tier, "model": row.get(f"model_{i}") or f"tier{i}"})
    return str(row.get("id") or n), tiers


def simulate(data: Labelled, thresholds: Sequence[float]) -> Point:
    """Run the cascade over every query: what it costs and how often it is right."""
    n = len(data)
    open_ = np.ones(n, dtype=np.bool_)
    cost = np.zeros(n)
    right = np.zeros(n)
    for tier, threshold in enumerate((*thresholds, -math.inf)):
        if threshold == SKIP:
            continue
        cost += np.where(open_, data.costs[:, tier], 0.0)
        accept = open_ & (data.scores[:, tier] >= threshold)
        right += np.where(accept, data.correct[:, tier], 0.0)
        open_ &= ~accept
    return Point(tuple(thresholds), float(right.mean()), float(cost.mean()))


def candidates(scores: Floats, levels: int) -> list[float]:
    """Thresholds at ``levels`` evenly spaced quantiles of ``scores``, and ``SKIP``."""
    cuts = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, levels)))
    return [*(float(c) for c in cuts), SKIP]


def search_space(data: Labelled, max_points: int = 20_000) -> Iterator[tuple[float, ...]]:
    """Every combination of candidate thresholds, about ``max_points`` of them at most."""
    free = len(data.models) - 1
    levels = max(2, int(max_points ** (1 / free)) - 1)
    grids = [candidates(data.scores[:, tier], levels) for tier in range(free)]
    return itertools.product(*grids)


def pareto(points: Sequence[Point]) -> list[Point]:
    """The points no other point beats on both cost and accuracy, cheapest first."""
    front: list[Point] = []
    for point in sorted(points, key=lambda p: (p.cost, -p.accuracy)):
        if not front or point.accuracy > front[-1].accuracy:
            front.append(point)
    return front


def choose(
    front: Sequence[Point], *, budget: float | None = None, target: float | None = None
) -> Point | None:
    """The most accurate point within ``budget`` (mean cost per query), or the cheapest
    reaching ``target`` accuracy; None when no point qualifies."""
    if budget is not None:
        within = [p for p in front if p.cost <= budget]
        return max(within, key=lambda p: (p.accuracy, -p.cost)) if within else None
    if target is not None:
        reaching = [p for p in front if p.accuracy >= target]
        return min(reaching, key=lambda p: (p.cost, -p.accuracy)) if reaching else None
    raise ValueError("give a budget or a target accuracy")


def split_labelled(data: Labelled, seed: int, test_share: float) -> tuple[Labelled, Labelled]:
    """(train, test), by hash of the id and ``seed`` (the same on every machine)."""
    mask = split_mask(data.ids, seed, test_share)
    return data.take(~mask), data.take(mask)


@dataclass(frozen=True, slots=True)
class Calibration:
    models: tuple[str, ...]
    chosen: Point  # on the training rows
    test: Point  # the chosen thresholds on the held-out rows
    alone: tuple[Point, ...]  # each tier alone, on the held-out rows
    frontier: tuple[tuple[Point, Point], ...]  # (train, test) of each frontier point

    @property
    def saving_vs_top(self) -> float:
        """Share of the top tier's cost (alone, held out) the cascade does not spend."""
        top = self.alone[-1].cost
        return 1.0 - self.test.cost / top if top > 0 else 0.0


def tier_alone(data: Labelled, tier: int) -> Point:
    return Point((), float(data.correct[:, tier].mean()), float(data.costs[:, tier].mean()))


def calibrate(
    train: Labelled,
    test: Labelled,
    *,
    budget: float | None = None,
    target: float | None = None,
    max_points: int = 20_000,
) -> Calibration | None:
    """Choose thresholds on ``train`` and report them on ``test``; None when nothing meets
    the budget or target."""
    front = pareto([simulate(train, t) for t in search_space(train, max_points)])
    chosen = choose(front, budget=budget, target=target)
    if chosen is None:
        return None
    alone = tuple(tier_alone(test, i) for i in range(len(test.models)))
    pairs = tuple((p, simulate(test, p.thresholds)) for p in front)
    return Calibration(train.models, chosen, simulate(test, chosen.thresholds), alone, pairs)
