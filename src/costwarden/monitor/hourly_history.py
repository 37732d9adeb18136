"""Hourly series per scope (global, or one value of model / team / user / key / feature), read
from the ledger's hourly cube for the live anomaly watch.

Complete hours hardly change once past, so they are kept between runs and only the last few
are read again (a request that started before the hour turned lands there late). Everything is
read anew when the hour turns and whenever a refresh folded older hours into the cube (a new
ledger's first build, a replayed spool): ``CubeRefresher.generation`` says so. This is a cache:
a new leader rebuilds it from the cube.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from costwarden.ledger.cube import HOUR, CubeRow
from costwarden.ledger.store import Store
from costwarden.monitor.config import Dimension, Metric

Scope = tuple[str, str | None]  # (dimension, value); ("global", None) is everything
Values = tuple[float, float, float]  # spend_usd, requests, tokens
FloatArray = npt.NDArray[np.float64]

METRIC_INDEX: dict[Metric, int] = {"spend_usd": 0, "requests": 1, "tokens": 2}
_RECENT = timedelta(hours=3)  # complete hours read again every run
# A refresh of more hours than this (the current one and the one just past) reached back
# further than the hours re-read every run.
_ROUTINE_HOURS = 2
_MAX_PASSES = 64


class CubeRefresher:
    """Folds new records into the cube for every job that needs it fresh, and counts the
    refreshes that reached back in time (``generation``), so caches know to reload."""

    def __init__(self, store: Store, hours_per_pass: int = 48) -> None:
        self._store = store
        self._hours_per_pass = hours_per_pass
        self.generation = 0

    async def refresh(self) -> int:
        """Refresh until nothing is dirty (bounded); return how many hours were refreshed."""
        total = 0
        for _ in range(_MAX_PASSES):
            done = await self._store.refresh_rollups(self._hours_per_pass)
            total += done
            if done < self._hours_per_pass:
                break
        if total > _ROUTINE_HOURS:
            self.generation += 1
        return total


def scope_name(scope: Scope) -> str:
    dimension, value = scope
    return "global" if dimension == "global" else f"{dimension}:{value if value else '(none)'}"


def _values(row: CubeRow) -> Values:
    return (float(row.cost), float(row.requests), float(row.input_tokens + row.output_tokens))


class HourlyHistory:
    """The last ``hours`` complete hours of every scope of ``dimensions``."""

    def __init__(self, store: Store, dimensions: Sequence[Dimension], hours: int) -> None:
        self._store = store
        self._dimensions = tuple(dimensions)
        self._span = timedelta(hours=hours)
        self._hours: dict[datetime, dict[Scope, Values]] = {}
        self._loaded_until: datetime | None = None
        self._generation = -1

    async def update(self, current_hour: datetime, generation: int) -> None:
        """Bring the complete hours before ``current_hour`` up to date (all of them if the hour
        turned or the cube's ``generation`` moved since the last update)."""
        start = current_hour - self._span
        full = self._loaded_until != current_hour or generation != self._generation
        since = start if full or self._loaded_until is None else self._loaded_until - _RECENT
        fresh = await self._read(since, current_hour)
        for hour in [h for h in self._hours if h < start or h >= since]:
            del self._hours[hour]
        for hour, scopes in fresh.items():
            self._hours[hour] = scopes
        self._loaded_until = current_hour
        self._generation = generation

    async def current(self, hour: datetime) -> dict[Scope, Values]:
        """The hour in progress so far (as far as the cube has been refreshed)."""
        return (await self._read(hour, hour + HOUR)).get(hour, {})

    def series(self, scope: Scope, metric: Metric, current_hour: datetime) -> FloatArray:
        """Complete hours of ``scope`` before ``current_hour``, from its first hour with traffic
        (oldest first). Leading hours before a scope existed are left out: zeros there would
        make its first real traffic look like a runaway."""
        index = METRIC_INDEX[metric]
        hours = sorted(h for h in self._hours if h < current_hour)
        seen = [h for h in hours if scope in self._hours[h]]
        if not seen:
            return np.zeros(0)
        first = seen[0]
        count = int((current_hour - first) / HOUR)
        out = np.zeros(count)
        for hour in seen:
            out[int((hour - first) / HOUR)] = self._hours[hour][scope][index]
        return out

    async def _read(self, since: datetime, until: datetime) -> dict[datetime, dict[Scope, Values]]:
        out: dict[datetime, dict[Scope, Values]] = {}
        for dimension in self._dimensions:
            group = ["start"] if dimension == "global" else ["start", dimension]
            for row in await self._store.cube("hour", group, since, until):
                start = datetime.fromisoformat(row.group["start"] or "")
                value = None if dimension == "global" else row.group[dimension]
                out.setdefault(start, {})[(dimension, value)] = _values(row)
        return out
