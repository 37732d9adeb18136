"""How good is a router: accuracy against the share of calls it sends to the strong model.

A router scores each prompt (higher: the strong model is more worth it); sending the top-k
scores to the strong model traces accuracy as k goes from 0 to n. The field's numbers
(RouteLLM, "RouteLLM: Learning to Route LLMs with Preference Data", 2024) are read off that curve:

- PGR(p) = (acc(p) - weak) / (strong - weak): the share of the weak→strong gap recovered;
- APGR = the area under PGR over p in [0, 1] (trapezoids over every k);
- CPT(x) = the fewest strong calls (share) whose PGR reaches x.

Ties are scored as a random tie-break would be on average: accuracy is linear inside a block
of equal scores (a per-subject prior gives one block per subject). The random router is the
line p·strong + (1-p)·weak; the oracle sends exactly the prompts the weak model gets wrong and
the strong one right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Curve:
    """``accuracy[k]`` with the k highest-scored prompts sent strong; ``share[k] = k / n``."""

    share: Floats
    accuracy: Floats
    weak: float  # accuracy with every call weak
    strong: float  # accuracy with every call strong

    def pgr(self) -> Floats:
        gap = self.strong - self.weak
        if gap <= 0:
            raise ValueError("PGR needs the strong model to beat the weak one")
        result: Floats = (self.accuracy - self.weak) / gap
        return result


def _tie_blocks(sorted_scores: Floats) -> npt.NDArray[np.int64]:
    """Start index of each run of equal scores, plus n at the end."""
    n = len(sorted_scores)
    changes = np.flatnonzero(sorted_scores[1:] != sorted_scores[:-1]) + 1
    return np.concatenate(([0], changes, [n])).astype(np.int64)


def accuracy_curve(scores: Floats, weak: Floats, strong: Floats) -> Curve:
    """The curve for ``scores`` on rows whose models scored ``weak`` / ``strong``."""
    n = len(scores)
    if n == 0 or len(weak) != n or len(strong) != n:
        raise ValueError("scores, weak and strong must be non-empty and aligned")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    gain = np.concatenate(([0.0], np.cumsum((strong - weak)[order])))
    bounds = _tie_blocks(np.asarray(scores, dtype=np.float64)[order])
    # Expected gain with a random order inside each tie block: linear between its ends.
    k = np.arange(n + 1)
    gain = np.interp(k, bounds, gain[bounds])
    total_weak = float(np.sum(weak))
    return Curve(
        share=k / n,
        accuracy=(total_weak + gain) / n,
        weak=total_weak / n,
        strong=float(np.mean(strong)),
    )


def apgr(curve: Curve) -> float:
    pgr = curve.pgr()
    widths = np.diff(curve.share)
    return float(np.sum(widths * (pgr[1:] + pgr[:-1]) / 2))


def share_reaching(curve: Curve, accuracy: float) -> float | None:
    """The fewest strong calls (share) whose accuracy reaches ``accuracy``; None if never."""
    # A tiny tolerance: a level met exactly must not be missed by float rounding.
    hits = np.flatnonzero(curve.accuracy >= accuracy - 1e-12)
    return float(curve.share[hits[0]]) if len(hits) else None


def cpt(curve: Curve, pgr_target: float) -> float | None:
    """CPT(x): the fewest strong calls whose PGR reaches ``pgr_target`` (e.g. 0.5)."""
    return share_reaching(curve, curve.weak + pgr_target * (curve.strong - curve.weak))


def share_for_strong_fraction(curve: Curve, fraction: float = 0.95) -> float | None:
    """The fewest strong calls reaching ``fraction`` × the strong model's accuracy."""
    return share_reaching(curve, fraction * curve.strong)


def accuracy_at(curve: Curve, share: float) -> float:
    """Accuracy with ``share`` of the calls strong (linear between whole calls)."""
    return float(np.interp(share, curve.share, curve.accuracy))


def random_curve(weak: Floats, strong: Floats) -> Curve:
    """The random router: every prompt equally likely to go strong (one tie block)."""
    return accuracy_curve(np.zeros(len(weak)), weak, strong)


def oracle_curve(weak: Floats, strong: Floats) -> Curve:
    """Knows the answers: strong exactly where it beats weak, best gains first."""
    return accuracy_curve(strong - weak, weak, strong)


@dataclass(frozen=True, slots=True)
class Summary:
    apgr: float
    cpt50: float | None
    cpt80: float | None
    cpt95: float | None
    share_95pct_strong: float | None  # share reaching 0.95 × strong accuracy

    def as_dict(self) -> dict[str, float | None]:
        return {
            "apgr": self.apgr,
            "cpt50": self.cpt50,
            "cpt80": self.cpt80,
            "cpt95": self.cpt95,
            "share_95pct_strong": self.share_95pct_strong,
        }


def summarise(curve: Curve) -> Summary:
    return Summary(
        apgr=apgr(curve),
        cpt50=cpt(curve, 0.5),
        cpt80=cpt(curve, 0.8),
        cpt95=cpt(curve, 0.95),
        share_95pct_strong=share_for_strong_fraction(curve, 0.95),
    )
