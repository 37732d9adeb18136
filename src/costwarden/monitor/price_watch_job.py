"""The scheduled price and version watch: one job that the monitor runner calls every interval.

Each run:

1. loads what the watch remembers from the store (the cards it last saw per model, the
   (model, reported version) pairs already alerted on), so a restart or a new leader replica
   carries on where the last run stopped;
2. **price drift** (``price_drift.py``): every configured model's rate card now against the
   card it saw last — a dated price that took effect since the previous run, a config edit, a
   newer genai-prices catalog after a deploy. A model it has never seen is compared with its
   last bill in the ledger instead; only those models read ``usage_records``, the newest hour
   first and back to ``lookback_s`` only for models without a bill in it, both on the
   ``created_at`` index, so a ten-million-row ledger costs an index range, not a scan;
3. **version watch** (``version_watch.py``): the rows since the previous run (first run:
   ``lookback_s``) whose reported model is not the upstream model sent, kept where the model
   is pinned;
4. when either found something, one grouped query of the last 7 days' volume per model
   prices the impact; each change is one alert — ``price.change``, ``price.catalog_upgrade``
   or ``version.changed``, scoped to the model, with both rate cards and the impact per week;
5. saves the new cards and the alerted versions before handing the alerts out: a failed save
   raises and the next run finds the same changes again, so nothing is lost and nothing is
   sent twice.

Why the version alert comes from this job rather than from the request path: its impact needs
the model's weekly volume, an aggregate query that has no place in a request; the ledger holds
every reported model anyway, so the job finds the versions from there once per interval, on
one replica, and persists which it has alerted on. The request path keeps its immediate,
synchronous ``pin.mismatch`` alert, without a cost.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Set
from datetime import datetime, timedelta

from costwarden.config import Settings
from costwarden.ledger.store import SpendRow, Store
from costwarden.ledger.watch import BilledPrice, VersionSighting, WatchState
from costwarden.monitor.alerts import Alert, AlertRouter
from costwarden.monitor.price_drift import DriftCheck, check_drifts, drift_alert
from costwarden.monitor.price_watch import VOLUME_WINDOW
from costwarden.monitor.price_watch_config import PriceWatchConfig
from costwarden.monitor.version_watch import (
    pinned_mismatches,
    version_change,
    version_change_alert,
)
from costwarden.pricing.catalog import PriceBook

log = logging.getLogger("costwarden.monitor")

# A model with traffic has a bill in the newest hour: that range is all most runs ever read.
_NEWEST = timedelta(hours=1)


class PriceWatchJob:
    """Price drift and version-vs-pin watch (module docstring); ``run(now)`` once per interval."""

    name = "price_watch"

    def __init__(
        self,
        settings: Settings,
        store: Store,
        alerts: AlertRouter | None,
        config: PriceWatchConfig | None = None,
    ) -> None:
        config = config or PriceWatchConfig()
        self._settings = settings
        self._store = store
        self._alerts = alerts
        self._lookback = timedelta(seconds=config.lookback_s)
        self._book = PriceBook(settings)
        self._last_run: datetime | None = None
        self.interval_s = config.interval_s

    async def run(self, now: datetime) -> None:
        for alert in await self.check(now):
            if self._alerts is not None:
                self._alerts.emit(alert)
            else:
                log.warning("%s: %s", alert.title, alert.text)

    async def check(self, now: datetime) -> list[Alert]:
        """One pass at ``now`` (UTC-aware): the alerts it raises, state already saved."""
        state = await self._store.price_watch_state()
        drift = await self._check_prices(state, now)
        versions = await self._check_versions(state, now)
        volume = await self._volume(now) if drift.drifts or versions else {}
        at = now.timestamp()
        alerts = [
            dataclasses.replace(drift_alert(d, d.change(volume.get(d.model))), at=at)
            for d in drift.drifts
        ]
        for sighting in versions:
            change = version_change(
                self._book, self._settings, sighting, volume.get(sighting.model), now
            )
            alerts.append(version_change_alert(change, at))
        await self._store.save_price_watch_state(drift.observations, versions)
        self._last_run = now
        return alerts

    async def _check_prices(self, state: WatchState, now: datetime) -> DriftCheck:
        models = self._settings.models
        unseen = {model.name for model in models} - state.prices.keys()
        billed = await self._last_bills(unseen, now) if unseen else {}
        return check_drifts(self._book, models, state.prices, billed, now)

    async def _last_bills(self, models: Set[str], now: datetime) -> dict[str, BilledPrice]:
        """The newest bill of each of ``models``: the newest hour first, then further back."""
        found: dict[str, BilledPrice] = {}
        until = now
        for span in (min(_NEWEST, self._lookback), self._lookback):
            since = now - span
            if since >= until:
                continue
            for bill in await self._store.last_billed_prices(since, until):
                found.setdefault(bill.model, bill)
            if models <= found.keys():
                break
            until = since
        return found

    async def _check_versions(self, state: WatchState, now: datetime) -> list[VersionSighting]:
        pins = self._settings.policy.pins
        if not pins:  # nothing is pinned: no version can be wrong
            return []
        since = now - self._lookback
        if self._last_run is not None:
            since = max(since, self._last_run)
        sightings = await self._store.version_sightings(since, now)
        return pinned_mismatches(pins, sightings, state.versions)

    async def _volume(self, now: datetime) -> dict[str, SpendRow]:
        rows = await self._store.spend(["model"], now - VOLUME_WINDOW, now)
        return {model: row for row in rows if (model := row.group["model"]) is not None}
