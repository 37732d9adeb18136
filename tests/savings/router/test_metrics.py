"""Curve numbers on cases small enough to compute by hand."""

from __future__ import annotations

import numpy as np
import pytest

from costwarden.savings.router.metrics import (
    accuracy_at,
    accuracy_curve,
    apgr,
    cpt,
    oracle_curve,
    random_curve,
    share_for_strong_fraction,
    summarise,
)

# weak right on row 0 only (0.25); strong right on rows 0-2 (0.75).
WEAK = np.array([1.0, 0.0, 0.0, 0.0])
STRONG = np.array([1.0, 1.0, 1.0, 0.0])


def test_curve_follows_the_score_order() -> None:
    # Order by score: row 1 (+1), row 2 (+1), row 3 (0), row 0 (0).
    curve = accuracy_curve(np.array([0.1, 0.9, 0.5, 0.2]), WEAK, STRONG)
    assert curve.weak == 0.25
    assert curve.strong == 0.75
    assert np.allclose(curve.share, [0, 0.25, 0.5, 0.75, 1])
    assert np.allclose(curve.accuracy, [0.25, 0.5, 0.75, 0.75, 0.75])
    assert np.allclose(curve.pgr(), [0, 0.5, 1, 1, 1])
    # Trapezoids of width 0.25: 0.0625 + 0.1875 + 0.25 + 0.25.
    assert apgr(curve) == pytest.approx(0.75)
    assert cpt(curve, 0.5) == 0.25
    assert cpt(curve, 0.8) == 0.5
    assert cpt(curve, 0.95) == 0.5
    # 0.95 × 0.75 = 0.7125 is first reached with two strong calls.
    assert share_for_strong_fraction(curve, 0.95) == 0.5


def test_a_bad_order_costs_strong_calls() -> None:
    # The worst order: rows with no gain first.
    curve = accuracy_curve(np.array([0.9, 0.1, 0.2, 0.8]), WEAK, STRONG)
    assert np.allclose(curve.accuracy, [0.25, 0.25, 0.25, 0.5, 0.75])
    assert cpt(curve, 0.5) == 0.75
    assert apgr(curve) == pytest.approx(0.25 * (0 + 0 + 0.25 + 0.75))


def test_ties_score_as_a_random_tie_break() -> None:
    curve = random_curve(WEAK, STRONG)
    assert np.allclose(curve.accuracy, [0.25, 0.375, 0.5, 0.625, 0.75])
    assert apgr(curve) == pytest.approx(0.5)
    assert cpt(curve, 0.5) == 0.5
    # Two tie blocks: {rows 1, 3} first (gain 1 of 2), then {rows 0, 2}.
    blocks = accuracy_curve(np.array([0.0, 1.0, 0.0, 1.0]), WEAK, STRONG)
    assert np.allclose(blocks.accuracy, [0.25, 0.375, 0.5, 0.625, 0.75])


def test_oracle_sends_only_the_gains() -> None:
    curve = oracle_curve(WEAK, STRONG)
    assert np.allclose(curve.accuracy, [0.25, 0.5, 0.75, 0.75, 0.75])
    assert accuracy_at(curve, 0.375) == pytest.approx(0.625)


def test_a_level_never_reached_is_none() -> None:
    # The strong model only loses here: PGR is undefined, a share for 95 % is all weak.
    weak = np.array([1.0, 1.0])
    strong = np.array([0.0, 1.0])
    curve = accuracy_curve(np.array([0.5, 0.2]), weak, strong)
    with pytest.raises(ValueError, match="PGR"):
        curve.pgr()
    assert share_for_strong_fraction(curve, 0.95) == 0.0
    never = accuracy_curve(np.array([0.5, 0.2]), np.array([0.0, 0.0]), np.array([0.0, 1.0]))
    assert share_for_strong_fraction(never, 1.5) is None


def test_summary_carries_every_number() -> None:
    summary = summarise(accuracy_curve(np.array([0.1, 0.9, 0.5, 0.2]), WEAK, STRONG))
    assert summary.as_dict() == {
        "apgr": pytest.approx(0.75),
        "cpt50": 0.25,
        "cpt80": 0.5,
        "cpt95": 0.5,
        "share_95pct_strong": 0.5,
    }


def test_misaligned_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="aligned"):
        accuracy_curve(np.array([0.1]), WEAK, STRONG)
