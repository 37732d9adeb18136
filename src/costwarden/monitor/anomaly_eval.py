"""Measuring an anomaly detector on labelled series: precision, recall, detection delay.

Scoring is per incident, as an on-call engineer feels it. An alert is a hit if it falls in a
labelled incident (or ``grace_h`` after it) that no earlier alert already claimed; a second alert
for the same incident is a duplicate and counts against precision like a false alert. Incidents
whose largest hourly excess is under the dollar floor are immaterial: missing them is not a miss
and alerting on them is neither hit nor false. Delay runs from the incident's first hour to the
run that raised the alert, so a detector that looks every five minutes can beat one hour.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from costwarden.monitor.anomaly import (
    AnomalyConfig,
    Assessment,
    IncidentTracker,
    assess,
    fit_baseline,
)
from costwarden.monitor.series import STEPS_PER_HOUR, LabelledIncident, LabelledSeries

PLAIN_FACTOR = 1.5
PLAIN_WINDOW = 24


@dataclass(slots=True)
class Tally:
    """Counts summed over series; the rates are derived from them."""

    alerts: int = 0
    hits: int = 0
    duplicates: int = 0
    neutral: int = 0
    material: int = 0
    detected: int = 0
    delays: list[float] = field(default_factory=list)
    delays_by_kind: dict[str, list[float]] = field(default_factory=dict)
    missed_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def false_alerts(self) -> int:
        """Alerts that matched no incident."""
        return self.alerts - self.hits - self.duplicates - self.neutral

    @property
    def precision(self) -> float:
        """Hits over every alert that is not neutral (1.0 when there were none)."""
        judged = self.alerts - self.neutral
        return self.hits / judged if judged else 1.0

    @property
    def recall(self) -> float:
        """Detected material incidents over material incidents (1.0 when there were none)."""
        return self.detected / self.material if self.material else 1.0

    def median_delay(self) -> float:
        """Median hours from incident start to alert (NaN when nothing was detected)."""
        return float(np.median(self.delays)) if self.delays else float("nan")


def _claim(alert_h: float, incidents: tuple[LabelledIncident, ...], grace_h: float
           ) -> LabelledIncident | None:
    """The incident an alert at ``alert_h`` belongs to, if any."""
    for incident in incidents:
        if incident.start <= alert_h <= incident.end + grace_h:
            return incident
    return None


def score(alerts: Iterable[float], incidents: tuple[LabelledIncident, ...], floor: float,
          grace_h: float, tally: Tally) -> None:
    """Add one series' alerts (hours, ascending) against its labels to ``tally``."""
    claimed: set[int] = set()
    for alert_h in alerts:
        tally.alerts += 1
        incident = _claim(alert_h, incidents, grace_h)
        if incident is None:
            continue
        if incident.peak_excess < floor:
            tally.neutral += 1
        elif incident.start in claimed:
            tally.duplicates += 1
        else:
            claimed.add(incident.start)
            tally.hits += 1
            delay = alert_h - incident.start
            tally.delays.append(delay)
            tally.delays_by_kind.setdefault(incident.kind, []).append(delay)
    material = [i for i in incidents if i.peak_excess >= floor]
    tally.material += len(material)
    tally.detected += sum(1 for i in material if i.start in claimed)
    for missed in (i for i in material if i.start not in claimed):
        tally.missed_by_kind[missed.kind] = tally.missed_by_kind.get(missed.kind, 0) + 1


def run_detector(series: LabelledSeries, start: int, config: AnomalyConfig) -> list[float]:
    """Alert times (hours) of the seasonal detector run every five minutes from ``start``."""
    tracker = IncidentTracker(config.cooldown_hours)
    floor = config.min_impact("spend_usd")
    alerts = []
    for hour in range(start, len(series.values)):
        baseline = fit_baseline(series.values[:hour], config)
        if baseline is None:
            continue
        for step in range(1, STEPS_PER_HOUR + 1):
            verdict = assess(baseline, float(series.partials[hour, step - 1]),
                             step / STEPS_PER_HOUR, floor, config)
            now_h = hour + step / STEPS_PER_HOUR
            if tracker.observe(series.scope, now_h, verdict) is not None:
                alerts.append(now_h)
    return alerts


def run_plain(series: LabelledSeries, start: int, cooldown_hours: float) -> list[float]:
    """Alert times of the seed's rule: a complete hour > 1.5 × the trailing 24-hour mean.

    It runs once per hour, as the seed did, through the same incident dedup so the comparison
    is of the rule and not of alert spam.
    """
    tracker = IncidentTracker(cooldown_hours)
    alerts = []
    for hour in range(max(start, PLAIN_WINDOW), len(series.values)):
        mean = float(np.mean(series.values[hour - PLAIN_WINDOW:hour]))
        value = float(series.values[hour])
        flagged = value > PLAIN_FACTOR * mean
        verdict = Assessment(projected=value, expected=mean, jump=value / max(mean, 1e-9) - 1,
                             impact=value - mean, score=0.0, flagged=flagged,
                             elevated=flagged)
        if tracker.observe(series.scope, hour + 1.0, verdict) is not None:
            alerts.append(hour + 1.0)
    return alerts


def evaluate(batch: list[LabelledSeries], start: int, config: AnomalyConfig,
             grace_h: float = 2.0) -> dict[str, Tally]:
    """Score the seasonal detector and the plain rule on ``batch``; keyed by detector name."""
    floor = config.min_impact("spend_usd")
    tallies = {"seasonal": Tally(), "plain": Tally()}
    for series in batch:
        score(run_detector(series, start, config), series.incidents, floor, grace_h,
              tallies["seasonal"])
        score(run_plain(series, start, config.cooldown_hours), series.incidents, floor,
              grace_h, tallies["plain"])
    return tallies

