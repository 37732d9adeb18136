"""Scoring arithmetic on a hand-made case, and the detectors on a few generated series."""

from __future__ import annotations

import pytest

from costwarden.monitor.anomaly import HOURS_PER_WEEK, AnomalyConfig
from costwarden.monitor.anomaly_eval import Tally, evaluate, score
from costwarden.monitor.series import LabelledIncident, SeriesShape, generate


def test_score_counts_hits_duplicates_false_and_neutral_alerts() -> None:
    incidents = (
        LabelledIncident("spike", 10, 12, 3.0, peak_excess=10.0),
        LabelledIncident("level_shift", 50, 60, 2.0, peak_excess=20.0),
        LabelledIncident("spike", 80, 81, 4.0, peak_excess=1.0),  # immaterial
        LabelledIncident("creep", 100, 101, 2.5, peak_excess=9.0),  # never alerted
    )
    tally = Tally()
    score([10.25, 11.0, 30.0, 52.0, 80.5], incidents, floor=5.0, grace_h=2.0, tally=tally)
    assert (tally.alerts, tally.hits, tally.duplicates, tally.neutral) == (5, 2, 1, 1)
    assert tally.false_alerts == 1
    assert tally.precision == pytest.approx(2 / 4)
    assert (tally.material, tally.detected) == (3, 2)
    assert tally.recall == pytest.approx(2 / 3)
    assert tally.median_delay() == pytest.approx((0.25 + 2.0) / 2)
    assert tally.missed_by_kind == {"creep": 1}


def test_grace_window_claims_a_late_alert_and_not_a_later_one() -> None:
    incidents = (LabelledIncident("spike", 10, 11, 3.0, peak_excess=10.0),)
    tally = Tally()
    score([13.0, 13.5], incidents, floor=5.0, grace_h=2.0, tally=tally)
    assert (tally.hits, tally.false_alerts) == (1, 1)


def test_seasonal_detector_beats_the_plain_rule_on_generated_series() -> None:
    shape = SeriesShape(eval_hours=3 * HOURS_PER_WEEK, incidents=3)
    tallies = evaluate(generate(5, 4, shape), shape.warmup_hours, AnomalyConfig())
    seasonal, plain = tallies["seasonal"], tallies["plain"]
    assert seasonal.material >= 6
    assert seasonal.precision >= 0.9 and seasonal.recall >= 0.8
    assert seasonal.precision > plain.precision
    assert seasonal.median_delay() < plain.median_delay()
