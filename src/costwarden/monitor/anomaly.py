"""Anomaly detection on one hourly series (spend, requests or tokens of one scope).

A scope is one value of one dimension (global, model, team, user, key, feature); the detector
does not care which, it sees an hourly series. Every few minutes the caller asks::

    baseline = fit_baseline(history, config)         # once per hour: past complete hours
    verdict = assess(baseline, partial, fraction, config.min_impact("spend_usd"), config)
    incident = tracker.observe(scope, now_h, verdict)  # an Incident only when one opens

The baseline is the median of the same hour-of-week over the last ``weeks`` weeks (the same
hour-of-day over recent days while a scope is younger than that), scaled by a robust level
factor: the median ratio of actual to seasonal value over the last ``level_hours``. The level
factor follows trend and growth; the median keeps a spike or a short runaway out of it. The
spread is the MAD of those ratios, so one odd hour does not widen it.

A flag needs all three: a relative jump over ``min_jump`` (the seed's +50 %), an absolute
impact of at least the metric's floor (so a scope spending cents cannot page anyone) and a
robust score over ``min_score`` (so a noisy scope must jump further than a steady one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from costwarden.monitor.config import AnomalyConfig, Metric

__all__ = ["AnomalyConfig", "Assessment", "Baseline", "Incident", "IncidentTracker", "Metric",
           "assess", "detect", "fit_baseline"]

FloatArray = npt.NDArray[np.float64]

HOURS_PER_WEEK = 168
HOURS_PER_DAY = 24
# MAD × 1.4826 estimates a normal standard deviation.
_MAD_TO_SIGMA = 1.4826
# Below this, a seasonal value counts as "no traffic": its ratio would be noise.
_TINY = 1e-9


@dataclass(frozen=True, slots=True)
class Baseline:
    """What the coming hour is expected to hold, and how far it normally strays (relative)."""

    expected: float
    sigma: float


@dataclass(frozen=True, slots=True)
class Assessment:
    """One judgement of the current (possibly partial) hour."""

    projected: float
    expected: float
    jump: float
    impact: float
    score: float
    flagged: bool
    elevated: bool


def _seasonal(history: FloatArray, positions: npt.NDArray[np.int64], period: int,
              count: int) -> FloatArray:
    """Median of the values ``period``, 2×``period``, … ``count``×``period`` hours earlier."""
    lags = period * np.arange(1, count + 1)
    return np.asarray(np.median(history[positions[:, None] - lags[None, :]], axis=1))


def _season_shape(hours: int, config: AnomalyConfig) -> tuple[int, int, int] | None:
    """(period, cycles, level window) for a series of ``hours`` hours, or None if too young."""
    for period, most in ((HOURS_PER_WEEK, config.weeks), (HOURS_PER_DAY, 7)):
        window = min(config.level_hours, hours - period)
        if window >= HOURS_PER_DAY:
            return period, min(most, (hours - window) // period), window
    return None


def fit_baseline(history: FloatArray, config: AnomalyConfig) -> Baseline | None:
    """Baseline for the hour right after ``history`` (complete hours, oldest first).

    None while the scope has under two days of history: nothing sound to compare with.
    """
    shape = _season_shape(len(history), config)
    if shape is None:
        return None
    period, cycles, window = shape
    now = len(history)
    positions = np.arange(now - window, now + 1, dtype=np.int64)
    profile = _seasonal(history, positions, period, cycles)
    past, past_profile = history[now - window:now], profile[:-1]
    seen = past_profile > _TINY
    if not seen.any():
        return Baseline(expected=float(profile[-1]), sigma=config.sigma_floor)
    ratios = past[seen] / past_profile[seen]
    level = float(np.median(ratios))
    if level <= _TINY:
        return Baseline(expected=0.0, sigma=config.sigma_floor)
    relative = ratios / level
    mad = float(np.median(np.abs(relative - np.median(relative))))
    sigma = max(_MAD_TO_SIGMA * mad, config.sigma_floor)
    return Baseline(expected=level * float(profile[-1]), sigma=sigma)


def assess(baseline: Baseline, partial: float, fraction: float, min_impact: float,
           config: AnomalyConfig) -> Assessment:
    """Judge the current hour from ``partial`` (its total so far) after ``fraction`` of it."""
    fraction = min(max(fraction, _TINY), 1.0)
    projected = partial / fraction
    expected = baseline.expected
    impact = projected - expected
    jump = impact / expected if expected > _TINY else (math.inf if impact > 0 else 0.0)
    # The projection's own error shrinks as the hour fills; add it to the series' spread.
    spread = math.sqrt(baseline.sigma ** 2 + config.partial_cv ** 2 * (1 - fraction) / fraction)
    score = impact / (max(expected, _TINY) * spread)
    flagged = (fraction >= config.min_fraction and jump > config.min_jump
               and impact >= min_impact and score >= config.min_score)
    elevated = fraction >= config.min_fraction and jump > config.sustain_share * config.min_jump
    return Assessment(projected=projected, expected=expected, jump=jump, impact=impact,
                      score=score, flagged=flagged, elevated=elevated)


def detect(history: FloatArray, partial: float, fraction: float, metric: Metric,
           config: AnomalyConfig) -> Assessment | None:
    """Fit and assess in one call (None while the scope is too young to judge)."""
    baseline = fit_baseline(history, config)
    if baseline is None:
        return None
    return assess(baseline, partial, fraction, config.min_impact(metric), config)


@dataclass(slots=True)
class Incident:
    """One runaway: opened by the first flag, kept open while flags keep coming."""

    scope: str
    opened_h: float
    last_flag_h: float
    peak_jump: float
    peak_impact: float


class IncidentTracker:
    """Turns a stream of flags into incidents: one runaway, one alert.

    A flag opens an incident. It stays open while its scope stays elevated (the weaker, sustain
    condition) and for ``cooldown_hours`` after that, so a runaway that dips under the threshold
    for a run or two, or whose night hours fall under the dollar floor, is not re-alerted.
    """

    def __init__(self, cooldown_hours: float) -> None:
        self._cooldown = cooldown_hours
        self._open: dict[str, Incident] = {}

    def observe(self, scope: str, now_h: float, verdict: Assessment) -> Incident | None:
        """Record one verdict at time ``now_h`` (hours); return an Incident only when it opens."""
        current = self._open.get(scope)
        if current is not None and now_h - current.last_flag_h > self._cooldown:
            del self._open[scope]
            current = None
        if current is not None and (verdict.flagged or verdict.elevated):
            current.last_flag_h = now_h
            current.peak_jump = max(current.peak_jump, verdict.jump)
            current.peak_impact = max(current.peak_impact, verdict.impact)
            return None
        if current is not None or not verdict.flagged:
            return None
        opened = Incident(scope=scope, opened_h=now_h, last_flag_h=now_h,
                          peak_jump=verdict.jump, peak_impact=verdict.impact)
        self._open[scope] = opened
        return opened

    def resume(self, scope: str, at_h: float) -> None:
        """Treat ``scope`` as alerted at ``at_h`` (an incident alerted before a restart)."""
        if scope not in self._open:
            self._open[scope] = Incident(scope=scope, opened_h=at_h, last_flag_h=at_h,
                                         peak_jump=0.0, peak_impact=0.0)

    def open_incidents(self) -> list[Incident]:
        """The incidents open now (their cool-down not yet run out at the last observation)."""
        return list(self._open.values())
