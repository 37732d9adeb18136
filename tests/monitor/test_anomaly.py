"""The hourly anomaly detector: spikes caught early, peaks and tiny scopes left alone, dedup."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from pydantic import ValidationError

from costwarden.monitor.anomaly import (
    HOURS_PER_DAY,
    HOURS_PER_WEEK,
    AnomalyConfig,
    IncidentTracker,
    detect,
    fit_baseline,
)
from costwarden.monitor.anomaly_eval import run_detector, run_plain
from costwarden.monitor.series import STEPS_PER_HOUR, LabelledSeries

CONFIG = AnomalyConfig()
WEEKS = 6
PEAK_HOUR = 14


def seasonal(level: float = 40.0, weeks: int = WEEKS, seed: int = 3) -> np.ndarray:
    """A deterministic-enough spend series: afternoon peak ~4× the night, quiet weekends."""
    t = np.arange(weeks * HOURS_PER_WEEK)
    daily = 0.3 + np.exp(-0.5 * ((t % HOURS_PER_DAY - PEAK_HOUR) / 3.5) ** 2)
    weekly = np.where((t // HOURS_PER_DAY) % 7 >= 5, 0.5, 1.0)
    noise = np.random.default_rng(seed).lognormal(0.0, 0.05, len(t))
    return np.asarray(level * daily * weekly * noise)


def first_flag_step(history: np.ndarray, hour_total: float, config: AnomalyConfig = CONFIG
                    ) -> int | None:
    """The first five-minute step at which an evenly arriving hour is flagged, if any."""
    for step in range(1, STEPS_PER_HOUR + 1):
        fraction = step / STEPS_PER_HOUR
        verdict = detect(history, hour_total * fraction, fraction, "spend_usd", config)
        assert verdict is not None
        if verdict.flagged:
            return step
    return None


def uniform_series(values: np.ndarray) -> LabelledSeries:
    partials = np.outer(values, np.arange(1, STEPS_PER_HOUR + 1) / STEPS_PER_HOUR)
    return LabelledSeries("scope", values, partials, ())


def test_three_x_spike_is_flagged_within_the_hour() -> None:
    values = seasonal()
    now = len(values) - HOURS_PER_DAY + PEAK_HOUR - 4  # a weekday late morning
    history, normal = values[:now], float(values[now])
    step = first_flag_step(history, 3 * normal)
    assert step is not None and step <= 4  # within twenty minutes, far inside the hour


def test_normal_daily_peak_is_not_flagged_though_the_plain_rule_would() -> None:
    values = seasonal()
    now = len(values) - 3 * HOURS_PER_DAY + PEAK_HOUR  # a Thursday afternoon peak
    history, peak = values[:now], float(values[now])
    assert peak > 1.5 * float(np.mean(history[-HOURS_PER_DAY:]))  # the seed's rule fires
    assert first_flag_step(history, peak) is None


def test_absolute_floor_suppresses_a_tiny_scope() -> None:
    values = seasonal(level=0.5)
    now = len(values) - HOURS_PER_DAY + PEAK_HOUR
    history, spike = values[:now], 3 * float(values[now])
    verdict = detect(history, spike, 1.0, "spend_usd", CONFIG)
    assert verdict is not None
    assert verdict.jump > 1.5 and verdict.score > CONFIG.min_score  # relatively a real jump
    assert not verdict.flagged  # ... worth well under $5 an hour
    assert first_flag_step(history, spike, AnomalyConfig(min_usd=Decimal("0"))) is not None


def test_multi_hour_runaway_gives_one_incident() -> None:
    values = seasonal()
    start = len(values) - 2 * HOURS_PER_DAY + 9
    values[start:start + 8] *= 4.0  # an eight-hour runaway, through the peak
    alerts = run_detector(uniform_series(values), len(values) - 3 * HOURS_PER_DAY, CONFIG)
    assert len(alerts) == 1
    assert start < alerts[0] <= start + 1


def test_clean_week_raises_nothing_while_the_plain_rule_fires_daily() -> None:
    series = uniform_series(seasonal())
    start = len(series.values) - HOURS_PER_WEEK
    assert run_detector(series, start, CONFIG) == []
    assert len(run_plain(series, start, CONFIG.cooldown_hours)) >= 5


def test_tracker_reopens_only_after_the_cooldown() -> None:
    values = seasonal()
    now = len(values) - HOURS_PER_DAY + PEAK_HOUR
    hot = detect(values[:now], 3 * float(values[now]), 1.0, "spend_usd", CONFIG)
    calm = detect(values[:now], float(values[now]), 1.0, "spend_usd", CONFIG)
    assert hot is not None and hot.flagged and calm is not None and not calm.elevated
    tracker = IncidentTracker(cooldown_hours=3.0)
    assert tracker.observe("k", 0.0, hot) is not None
    assert tracker.observe("k", 1.0, hot) is None
    assert tracker.observe("k", 2.0, calm) is None
    assert tracker.observe("k", 3.5, hot) is None  # 2.5 h after the last flag: same incident
    assert tracker.observe("other", 3.5, hot) is not None  # scopes are independent
    assert tracker.observe("k", 7.0, hot) is not None  # 3.5 h quiet: a new incident


def test_young_scope_is_not_judged_and_config_is_strict() -> None:
    assert fit_baseline(seasonal()[:40], CONFIG) is None
    assert fit_baseline(seasonal()[:72], CONFIG) is not None  # hour-of-day fallback
    with pytest.raises(ValidationError):
        AnomalyConfig(min_jump=0.5, typo=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        AnomalyConfig(weeks=0)


def test_relative_jump_is_required_even_when_score_and_dollars_are_large() -> None:
    values = seasonal()
    now = len(values) - HOURS_PER_DAY + PEAK_HOUR
    verdict = detect(values[:now], 1.3 * float(values[now]), 1.0, "spend_usd", CONFIG)
    assert verdict is not None
    assert verdict.score > CONFIG.min_score and verdict.impact > float(CONFIG.min_usd)
    assert not verdict.flagged  # +30 % is under the +50 % rule
    assert verdict.elevated  # ... but would keep an open incident open
