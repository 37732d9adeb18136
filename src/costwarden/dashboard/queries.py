"""What each page shows, read from the ledger's rollups (the cube) and its recent records.

Pages never scan ``usage_records`` for sums: every total, breakdown and series comes from
``Store.cube``, whose size grows with the number of distinct (hour, dimensions) combinations,
not with the number of requests. Only the latest-requests list reads records, newest first
through the created_at index, ``limit`` at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from costwarden.dashboard.params import Grain, TableView, Window, floor_to
from costwarden.ledger.cube import CubeRow
from costwarden.ledger.store import Store, StoredAlert
from costwarden.records import UsageRecord

_ZERO = Decimal(0)
_DAY = timedelta(days=1)
Filters = Mapping[str, str | None]
GroupKey = tuple[str | None, ...]


@dataclass(frozen=True, slots=True)
class Totals:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost: Decimal = _ZERO
    unknown_cost_requests: int = 0
    saved: Decimal = _ZERO

    @property
    def cost_saved(self) -> Decimal:  # the cube's name for it, so both sum alike
        return self.saved

    @property
    def saved_share(self) -> Decimal | None:
        """Saved ÷ (spent + saved): the part of the bill without savings that was avoided."""
        gross = self.cost + self.saved
        return self.saved / gross if gross > 0 else None


def total(rows: Iterable[CubeRow | Totals]) -> Totals:
    """The sum of cube rows (or of totals): one pass per field, at C speed."""
    items = list(rows)
    return Totals(
        sum(r.requests for r in items),
        sum(r.input_tokens for r in items),
        sum(r.output_tokens for r in items),
        sum(r.cached_tokens for r in items),
        sum((r.cost for r in items), _ZERO),
        sum(r.unknown_cost_requests for r in items),
        sum((r.cost_saved for r in items), _ZERO),
    )


@dataclass(frozen=True, slots=True)
class Series:
    name: str | None  # the dimension value (None: unset)
    values: tuple[Decimal, ...]  # cost per bucket, aligned with ``TimeSeries.starts``
    other: bool = False  # the sum of the values past the top ones

    @property
    def total(self) -> Decimal:
        return sum(self.values, _ZERO)


@dataclass(frozen=True, slots=True)
class TimeSeries:
    window: Window
    dimension: str
    starts: tuple[datetime, ...]
    series: tuple[Series, ...]  # most expensive first, "other" last
    totals: Totals
    by_value: tuple[tuple[str | None, Totals], ...] = field(default=())  # most expensive first


def _bucket_start(row: CubeRow) -> datetime:
    text = row.group["start"]
    assert text is not None  # the cube always has a start
    return datetime.fromisoformat(text)


async def spend_over_time(
    store: Store, window: Window, dimension: str, filters: Filters, max_series: int
) -> TimeSeries:
    """Cost per bucket of ``window`` stacked by ``dimension``: the ``max_series`` most
    expensive values, and the rest summed as one "other" series."""
    rows = await store.cube(
        window.grain, ["start", dimension], window.since, window.until, filters
    )
    starts = tuple(window.starts())
    index = {start: i for i, start in enumerate(starts)}
    per_value: dict[str | None, list[Decimal]] = {}
    rows_of: dict[str | None, list[CubeRow]] = {}
    for row in rows:
        value = row.group[dimension]
        bucket = index.get(_bucket_start(row))
        if bucket is None:
            continue
        per_value.setdefault(value, [_ZERO] * len(starts))[bucket] += row.cost
        rows_of.setdefault(value, []).append(row)
    totals = {value: total(value_rows) for value, value_rows in rows_of.items()}
    ranked = sorted(totals, key=lambda v: (-totals[v].cost, v is not None, v or ""))
    series = [Series(v, tuple(per_value[v])) for v in ranked[:max_series]]
    rest = ranked[max_series:]
    if rest:
        summed = [sum(col, _ZERO) for col in zip(*(per_value[v] for v in rest), strict=True)]
        series.append(Series(None, tuple(summed), other=True))
    return TimeSeries(
        window,
        dimension,
        starts,
        tuple(series),
        total(totals.values()),
        tuple((v, totals[v]) for v in ranked),
    )


def day_split(since: datetime, until: datetime) -> list[tuple[Grain, datetime, datetime]]:
    """[since, until) as whole UTC days (read from the small day rollup) plus the hours
    before the first and after the last whole day (hour rollup). Both ends on the hour."""
    first_day = floor_to(since + _DAY - timedelta(microseconds=1), "day")
    last_day = floor_to(until, "day")
    if first_day >= last_day:
        return [("hour", since, until)]
    parts: list[tuple[Grain, datetime, datetime]] = [("day", first_day, last_day)]
    if since < first_day:
        parts.insert(0, ("hour", since, first_day))
    if last_day < until:
        parts.append(("hour", last_day, until))
    return parts


async def cube_sum(
    store: Store,
    group_by: Sequence[str],
    since: datetime,
    until: datetime,
    filters: Filters | None = None,
) -> dict[GroupKey, Totals]:
    """Totals per group over [since, until) (hour-aligned), reading the day rollup for
    every whole day in it: a month is ~30 day cells per combination instead of ~720."""
    rows_of: dict[GroupKey, list[CubeRow]] = {}
    for grain, start, end in day_split(since, until):
        for row in await store.cube(grain, group_by, start, end, filters):
            rows_of.setdefault(tuple(row.group[g] for g in group_by), []).append(row)
    return {key: total(rows) for key, rows in rows_of.items()}


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    value: str | None
    totals: Totals


BREAKDOWN_COLUMNS = ("value", "requests", "input_tokens", "output_tokens", "cost", "saved")


async def breakdown(
    store: Store, window: Window, dimension: str, filters: Filters | None = None
) -> list[BreakdownRow]:
    sums = await cube_sum(store, [dimension], window.since, window.until, filters)
    return [BreakdownRow(key[0], totals) for key, totals in sums.items()]


def _sort_key(column: str) -> Callable[[BreakdownRow], Any]:
    if column == "value":
        return lambda r: (r.value is not None, r.value or "")
    if column == "saved":
        return lambda r: r.totals.saved
    return lambda r: getattr(r.totals, column)


def sort_rows(rows: Sequence[BreakdownRow], view: TableView) -> list[BreakdownRow]:
    """Sorted by the view's column (ties by value, so the order is stable across reloads)."""
    by_value = sorted(rows, key=lambda r: (r.value is not None, r.value or ""))
    return sorted(by_value, key=_sort_key(view.sort), reverse=view.descending)


async def latest_requests(
    store: Store,
    window: Window,
    filters: Mapping[str, str],
    limit: int,
    before: datetime | None,
) -> list[UsageRecord]:
    return await store.list_records(window.since, window.until, filters, limit, before)


async def recent_events(
    store: Store, since: datetime, until: datetime, limit: int, kinds: Sequence[str] | None = None
) -> list[StoredAlert]:
    return await store.list_alerts(since, until, kinds, limit)
