"""Rollups: the ledger summed per hour and per UTC day over the attribution dimensions (a "cube").

Dashboards, forecasts of large ledgers and the anomaly detector read the cube instead of the
records: a month of ten million requests is tens of thousands of cube rows per day-grain query.

How it stays right without slowing the writer:

* The writer's insert transaction marks each hour it touched dirty (``rollup_dirty``, one upsert
  per distinct hour of the batch, usually one), bumping a version.
* ``refresh_rollups`` recomputes each dirty hour from its records (delete + insert-select) and
  then the day it falls in from the hour rows, and deletes the mark only if its version is still
  the one it read. Rows that land during a refresh bump the version, so that hour is simply
  refreshed again next time. A replayed spool, a late final line of a request that started in an
  earlier hour, or an interrupted in-flight row all mark their own hours, so nothing is missed.
* Money is nano-dollars in one integer per cube cell: the sum of the cell's exact costs, rounded
  once (half-even). A day cell sums its hour cells, so its error is under 12 nano-dollars; the
  exact decimal costs stay in the records for invoices and reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # sql.py imports store.py, which imports this module's types
    from costwarden.ledger.sql import Params

Grain = Literal["hour", "day"]
GRAINS: tuple[Grain, ...] = ("hour", "day")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
NANO = Decimal("1e-9")
_PER_USD = Decimal(1_000_000_000)

# Cube dimension → its column (``start`` is the hour or day the row sums).
CUBE_DIMENSIONS: Mapping[str, str] = {
    "start": "start",
    "model": "model",
    "team": "team",
    "user": "user_id",
    "key": "key_id",
    "feature": "feature",
    "env": "env",
    "provider": "provider",
}
# The attribution columns a cube row is keyed by, and how each is computed from a record.
KEY_COLUMNS: tuple[str, ...] = ("model", "team", "user_id", "key_id", "feature", "env", "provider")
RECORD_KEY_EXPRESSIONS: tuple[str, ...] = (
    "COALESCE(resolved_model, requested_model)",
    "team",
    "user_id",
    "key_id",
    "feature",
    "env",
    "provider",
)
SUM_COLUMNS: tuple[str, ...] = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_nusd",
    "unknown_cost_requests",
    "saved_nusd",
)


CUBE_COLUMNS: tuple[str, ...] = ("grain", "start", *KEY_COLUMNS, *SUM_COLUMNS)
CUBE_INSERT = f"INSERT INTO usage_cube ({', '.join(CUBE_COLUMNS)}) "


def hour_select_sql(mark: Callable[[int], str], nano_sum: Callable[[str], str]) -> str:
    """SELECT of one hour's cube rows from its records (binds: start, end as 1 and 2);
    ``nano_sum`` is the dialect's exact sum of a money column in nano-dollars."""
    start, end = mark(1), mark(2)
    keys = ", ".join(RECORD_KEY_EXPRESSIONS)
    return (
        f"SELECT 'hour', {start}, {keys}, COUNT(*), COALESCE(SUM(input_tokens), 0), "  # noqa: S608
        "COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cache_read_tokens), 0), "
        f"{nano_sum('cost')}, COUNT(*) - COUNT(cost), {nano_sum('cost_saved')} "
        f"FROM usage_records WHERE created_at >= {start} AND created_at < {end} GROUP BY {keys}"
    )


def day_from_hours_sql(mark: Callable[[int], str]) -> str:
    """INSERT of one day's cube rows summed from its hour rows (binds: start, end as 1, 2)."""
    start, end = mark(1), mark(2)
    keys = ", ".join(KEY_COLUMNS)
    sums = ", ".join(f"SUM({c})" for c in SUM_COLUMNS)
    return (
        f"{CUBE_INSERT}SELECT 'day', {start}, {keys}, {sums} FROM usage_cube "  # noqa: S608
        f"WHERE grain = 'hour' AND start >= {start} AND start < {end} GROUP BY {keys}"
    )


# The narrow rollup (``usage_cube_dim``): the cube summed per single dimension. A table of users
# or a chart stacked by team reads it: a few thousand rows a day instead of one per combination.
NARROW_DIMENSIONS: tuple[str, ...] = (
    "global", "model", "team", "user", "key", "feature", "env", "provider",
)  # fmt: skip


def narrow_refresh_sql(mark: Callable[[int], str]) -> tuple[str, list[str]]:
    """Statements rebuilding one (grain, start) of ``usage_cube_dim`` from ``usage_cube``; each
    binds (grain, start) as parameters 1 and 2."""
    grain, start = mark(1), mark(2)
    delete = f"DELETE FROM usage_cube_dim WHERE grain = {grain} AND start = {start}"  # noqa: S608
    sums = ", ".join(f"SUM({c})" for c in SUM_COLUMNS)
    inserts = []
    for dimension in NARROW_DIMENSIONS:
        value = "NULL" if dimension == "global" else CUBE_DIMENSIONS[dimension]
        group = "" if dimension == "global" else f" GROUP BY {value}"
        inserts.append(
            f"INSERT INTO usage_cube_dim (grain, start, dimension, value, {', '.join(SUM_COLUMNS)}) "  # noqa: S608, E501
            f"SELECT {grain}, {start}, '{dimension}', {value}, {sums} FROM usage_cube "
            f"WHERE grain = {grain} AND start = {start}{group} HAVING COUNT(*) > 0"
        )
    return delete, inserts


class CubeQueryError(ValueError):
    """A cube query named an unknown dimension or grain, or a range not on the grain."""


@dataclass(frozen=True, slots=True)
class CubeRow:
    """One group of a cube query; ``start`` values are ISO 8601 UTC text."""

    group: dict[str, str | None]
    requests: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost: Decimal  # known costs, summed at nano-dollar precision
    unknown_cost_requests: int
    cost_saved: Decimal


def usd_to_nano(amount: Decimal) -> int:
    return int((amount * _PER_USD).to_integral_value(rounding=ROUND_HALF_EVEN))


def nano_to_usd(nano: int) -> Decimal:
    return Decimal(nano).scaleb(-9)


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(moment: datetime) -> datetime:
    return floor_hour(moment).replace(hour=0)


def floor_to(grain: Grain, moment: datetime) -> datetime:
    return floor_hour(moment) if grain == "hour" else floor_day(moment)


def check_cube_query(grain: str, group_by: Sequence[str], filters: Mapping[str, Any]) -> None:
    if grain not in GRAINS:
        raise CubeQueryError(f"grain must be one of {GRAINS}, not {grain!r}")
    unknown = sorted((set(group_by) | set(filters)) - CUBE_DIMENSIONS.keys())
    if unknown:
        raise CubeQueryError(f"unknown cube dimension(s) {unknown}; known: {list(CUBE_DIMENSIONS)}")
    if len(set(group_by)) != len(group_by):
        raise CubeQueryError(f"group_by repeats a dimension: {list(group_by)}")


def cube_sql(
    params: Params,
    time_value: Any,
    grain: Grain,
    group_by: Sequence[str],
    *,
    since: datetime,
    until: datetime,
    filters: Mapping[str, str | None],
) -> str:
    """One row per group: the group's values, then the ``SUM_COLUMNS`` sums, in that order."""
    check_cube_query(grain, group_by, filters)
    if "start" in filters:
        raise CubeQueryError("filter on a time range with since/until, not on 'start'")
    clauses = [
        f"grain = {params.bind(grain)}",
        f"start >= {params.bind(time_value(floor_to(grain, since)))}",
        f"start < {params.bind(time_value(until))}",
    ]
    narrow = narrow_dimension(group_by, filters)
    if narrow is not None:
        return _narrow_sql(params, narrow, group_by, clauses, filters)
    for name, value in filters.items():
        column = CUBE_DIMENSIONS[name]
        clauses.append(f"{column} IS NULL" if value is None else f"{column} = {params.bind(value)}")
    keys = [CUBE_DIMENSIONS[g] for g in group_by]
    sums = [f"SUM({c})" for c in SUM_COLUMNS]
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    where = " AND ".join(clauses)
    return f"SELECT {', '.join([*keys, *sums])} FROM usage_cube WHERE {where}{group}"  # noqa: S608


def narrow_dimension(group_by: Sequence[str], filters: Mapping[str, str | None]) -> str | None:
    """The one dimension a query groups or filters by (``global``: none), if it reads no other:
    then the narrow rollup answers it."""
    named = {g for g in group_by if g != "start"} | set(filters)
    if len(named) > 1:
        return None
    return named.pop() if named else "global"


def _narrow_sql(params: Params, dimension: str, group_by: Sequence[str], time_clauses: list[str],
                filters: Mapping[str, str | None]) -> str:
    clauses = [*time_clauses, f"dimension = {params.bind(dimension)}"]
    if dimension in filters:
        value = filters[dimension]
        clauses.append("value IS NULL" if value is None else f"value = {params.bind(value)}")
    keys = ["start" if g == "start" else "value" for g in group_by]
    sums = [f"SUM({c})" for c in SUM_COLUMNS]
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    where = " AND ".join(clauses)
    return f"SELECT {', '.join([*keys, *sums])} FROM usage_cube_dim WHERE {where}{group}"  # noqa: S608


def cube_row(group_by: Sequence[str], values: Sequence[Any]) -> CubeRow:
    """A CubeRow from one result row of ``cube_sql`` (either backend's types)."""
    n = len(group_by)
    group = {g: _group_text(g, v) for g, v in zip(group_by, values[:n], strict=True)}
    requests, input_tokens, output_tokens, cached, cost, unknown, saved = values[n:]
    return CubeRow(
        group=group,
        requests=int(requests or 0),
        input_tokens=int(input_tokens or 0),
        output_tokens=int(output_tokens or 0),
        cached_tokens=int(cached or 0),
        cost=nano_to_usd(int(cost or 0)),
        unknown_cost_requests=int(unknown or 0),
        cost_saved=nano_to_usd(int(saved or 0)),
    )


def _group_text(dimension: str, value: Any) -> str | None:
    if value is None:
        return None
    if dimension != "start":
        return str(value)
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.astimezone(UTC).isoformat()


def sort_cube_rows(rows: list[CubeRow], group_by: Sequence[str]) -> list[CubeRow]:
    """Order by group values, None first, identically for every backend."""

    def key(row: CubeRow) -> tuple[tuple[bool, str], ...]:
        return tuple((row.group[g] is not None, row.group[g] or "") for g in group_by)

    return sorted([r for r in rows if r.requests], key=key)
