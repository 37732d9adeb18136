"""The live anomaly watch: the detector of ``anomaly.py`` run on the ledger every few minutes.

Each run refreshes the cube, reads the hour in progress per scope (global, model, team, user,
key, feature), projects it to the full hour and judges it against the scope's seasonal baseline,
for spend, requests and tokens. Only scopes whose projection could clear a metric's dollar /
count floor are judged (plus those with an incident open): a scope that cannot reach the floor
cannot be flagged, and there may be thousands of users.

One runaway, one alert. A scope's metrics share one incident (a runaway lifts spend, requests
and tokens together). A runaway user also lifts its key, team, model and the global total; a
coarser scope's new incident is "explained" when a finer scope with an incident accounts for at
least half of its excess in the same metric, and it is then named in the finer scope's alert
instead of paging on its own. Incidents are restored from the alert log on a new leader's first
run, so a restart or a leader change does not page twice for one runaway.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from costwarden.ledger.cube import HOUR, floor_hour
from costwarden.ledger.store import Store
from costwarden.monitor.alerts import Alert, AlertRouter, Severity
from costwarden.monitor.anomaly import HOURS_PER_WEEK, Assessment, IncidentTracker, detect
from costwarden.monitor.config import AnomalyWatchConfig, Metric
from costwarden.monitor.hourly_history import (
    METRIC_INDEX,
    CubeRefresher,
    HourlyHistory,
    Scope,
    scope_name,
)

log = logging.getLogger("costwarden.monitor")

# Finer scopes explain coarser ones: a user's runaway lifts its key, team, model and the total.
_RANK = {"global": 0, "model": 1, "team": 1, "feature": 1, "key": 2, "user": 3}
_EXPLAINED_SHARE = 0.5
_CRITICAL_JUMP = 4.0  # five times the expected hour
_SECONDS_PER_HOUR = 3600.0


@dataclass(slots=True)
class Flag:
    """A scope whose incident opened in this run, and what it covers."""

    scope: Scope
    metric: Metric
    verdict: Assessment
    explains: list[Scope] = field(default_factory=list)


def headline(verdicts: Mapping[Metric, Assessment]) -> tuple[Metric, Assessment]:
    """The metric a scope's incident is about: spend first among the flagged, then the largest
    jump among the elevated, then any."""
    for want in ("flagged", "elevated"):
        chosen = [(m, v) for m, v in verdicts.items() if getattr(v, want)]
        if chosen:
            return max(chosen, key=lambda mv: (mv[0] == "spend_usd", mv[1].jump))
    return next(iter(verdicts.items()))


class AnomalyWatch:
    name = "anomaly"

    def __init__(self, store: Store, config: AnomalyWatchConfig, alerts: AlertRouter | None,
                 refresher: CubeRefresher | None = None) -> None:
        self._store = store
        self._refresher = refresher or CubeRefresher(store)
        self._config = config
        self._detector = config.detector
        self._alerts = alerts
        self.interval_s = config.interval_s
        hours = (self._detector.weeks + 1) * HOURS_PER_WEEK
        self._history = HourlyHistory(store, config.dimensions, hours)
        self._tracker = IncidentTracker(self._detector.cooldown_hours)
        self._restored = False
        self._last: dict[Scope, dict[Metric, Assessment]] = {}

    async def run(self, now: datetime) -> None:
        for alert in await self.check(now):
            if self._alerts is not None:
                self._alerts.emit(alert)

    async def check(self, now: datetime) -> list[Alert]:
        """One pass at ``now``: the alerts for incidents that opened (already deduplicated)."""
        await self._refresher.refresh()  # the hour in progress must be in the cube
        hour = floor_hour(now)
        fraction = (now - hour) / HOUR
        await self._history.update(hour, self._refresher.generation)
        if not self._restored:
            await self._restore(now)
        verdicts = self._judge(await self._history.current(hour), hour, fraction)
        self._last = verdicts
        now_h = now.timestamp() / _SECONDS_PER_HOUR
        flags = []
        for scope, by_metric in verdicts.items():
            metric, verdict = headline(by_metric)
            if self._tracker.observe(scope_name(scope), now_h, verdict) is not None:
                flags.append(Flag(scope, metric, verdict))
        return [self._alert(flag, hour, now) for flag in self._unexplained(flags)]

    def _judge(self, current: Mapping[Scope, tuple[float, float, float]], hour: datetime,
               fraction: float) -> dict[Scope, dict[Metric, Assessment]]:
        open_scopes = {i.scope for i in self._tracker.open_incidents()}
        out: dict[Scope, dict[Metric, Assessment]] = {}
        for scope, values in current.items():
            judged = {}
            for metric in self._config.metrics:
                partial = values[METRIC_INDEX[metric]]
                floor = self._detector.min_impact(metric)
                if partial / max(fraction, 1e-9) < floor and scope_name(scope) not in open_scopes:
                    continue
                history = self._history.series(scope, metric, hour)
                verdict = detect(history, partial, fraction, metric, self._detector)
                if verdict is not None:
                    judged[metric] = verdict
            if judged:
                out[scope] = judged
        return out

    def _unexplained(self, flags: list[Flag]) -> list[Flag]:
        """Flags not accounted for by a finer scope's incident (those are folded into it)."""
        flags.sort(key=lambda f: -_RANK[f.scope[0]])  # finest first: they own the alert
        new = {f.scope for f in flags}
        open_names = {i.scope for i in self._tracker.open_incidents()}
        earlier = [s for s in self._last if scope_name(s) in open_names and s not in new]
        kept: list[Flag] = []
        for flag in flags:
            owner = self._owner(flag, kept, earlier)
            if owner is None:
                kept.append(flag)
            elif isinstance(owner, Flag):
                owner.explains.append(flag.scope)
        return kept

    def _owner(self, flag: Flag, flags: list[Flag], earlier: list[Scope]) -> Flag | Scope | None:
        rank = _RANK[flag.scope[0]]
        need = _EXPLAINED_SHARE * flag.verdict.impact
        for other in flags:
            if _RANK[other.scope[0]] > rank and self._impact(other.scope, flag.metric) >= need:
                return other
        for scope in earlier:
            if _RANK[scope[0]] > rank and self._impact(scope, flag.metric) >= need:
                return scope
        return None

    def _impact(self, scope: Scope, metric: Metric) -> float:
        verdict = self._last.get(scope, {}).get(metric)
        return verdict.impact if verdict is not None else 0.0

    async def _restore(self, now: datetime) -> None:
        """Re-open the incidents alerted within the cool-down (a restart, a new leader)."""
        since = now - timedelta(hours=self._detector.cooldown_hours)
        for stored in await self._store.list_alerts(since, now, kinds=["anomaly"], limit=1000):
            at_h = stored.at.timestamp() / _SECONDS_PER_HOUR
            for name in stored.fields.get("scopes", stored.scope).split(","):
                self._tracker.resume(name, at_h)
        self._restored = True

    def _alert(self, flag: Flag, hour: datetime, now: datetime) -> Alert:
        v, metric = flag.verdict, flag.metric
        name = scope_name(flag.scope)
        minutes = int((now - hour).total_seconds() // 60)
        fields = {
            "scope": name,
            "metric": metric,
            "projected": _amount(metric, v.projected),
            "expected": _amount(metric, v.expected),
            "jump": f"+{v.jump:.0%}" if v.jump != float("inf") else "new",
            "hour": hour.isoformat(),
            "scopes": ",".join([name, *(scope_name(s) for s in flag.explains)]),
        }
        if flag.explains:
            fields["also elevated"] = ", ".join(scope_name(s) for s in flag.explains)
        severity: Severity = "critical" if v.jump >= _CRITICAL_JUMP else "warning"
        return Alert(
            kind=f"anomaly.{metric}",
            severity=severity,
            title=f"{_LABEL[metric]} anomaly: {name} at {fields['projected']}/h, "
            f"expected {fields['expected']}/h ({fields['jump']})",
            text=(
                f"Projected from the first {minutes} min of the {hour:%H:00} UTC hour against "
                f"the same hour of past weeks, scaled to the recent level."
            ),
            scope=name,
            dedup_key=f"anomaly:{name}:{hour.isoformat()}",
            fields=fields,
            at=now.timestamp(),
        )


_LABEL: dict[Metric, str] = {"spend_usd": "Spend", "requests": "Request", "tokens": "Token"}


def _amount(metric: Metric, value: float) -> str:
    if metric == "spend_usd":
        # Cents for real money; significant digits for scopes that spend fractions of a cent.
        return f"${value:,.2f}" if abs(value) >= 0.01 else f"${value:.6f}"
    return f"{value:,.0f} {'requests' if metric == 'requests' else 'tokens'}"
