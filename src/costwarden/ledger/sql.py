"""SQL shared by both backends: the migration files and the report query builder.

Only constant SQL fragments (column names and the expressions in ``DIMENSIONS``) are ever
formatted into a statement; every value is a bound parameter.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from importlib import resources
from typing import Any

from costwarden.ledger.rows import COLUMNS
from costwarden.ledger.store import DIMENSIONS, ReportQueryError, SpendRow, check_dimensions

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
INTERRUPTED_MESSAGE = "gateway stopped before the request finished"


def upsert_record_sql(param_marker: Callable[[int], str]) -> str:
    """Insert one row; on a request_id already stored, a *final* row replaces a row that is
    only a marker (``in_flight``, or ``interrupted`` by a replay that had not seen the final
    line yet), and nothing else is ever replaced.

    So a pending line never overwrites anything (a replayed one finds its final row), the first
    final line of a request wins (replays are idempotent), and pending and final lines give the
    final record in whatever order or batches they arrive.
    """
    updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "request_id")
    values = ", ".join(param_marker(i) for i in range(1, len(COLUMNS) + 1))
    return (
        f"INSERT INTO usage_records ({', '.join(COLUMNS)}) VALUES ({values}) "  # noqa: S608
        f"ON CONFLICT (request_id) DO UPDATE SET {updates} "
        "WHERE usage_records.status IN ('in_flight', 'interrupted') "
        "AND excluded.status <> 'in_flight'"
    )


def interrupt_in_flight_sql(param_marker: Callable[[int], str]) -> str:
    """Mark one spool writer's rows still in flight as interrupted (binds: message, writer).

    The cost becomes NULL (unknown: the upstream may bill for it, and we cannot know how much),
    never a silent 0; the row then counts in ``unknown_cost_requests``.
    """
    message, writer = param_marker(1), param_marker(2)
    return (
        "UPDATE usage_records SET status = 'interrupted', error_type = 'interrupted', "  # noqa: S608
        f"error_message = {message}, cost = NULL, cost_input = NULL, cost_output = NULL "
        f"WHERE status = 'in_flight' AND spool_writer = {writer}"
    )


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(dialect: str) -> list[Migration]:
    """The numbered ``migrations/<dialect>/NNNN_name.sql`` files, in version order."""
    folder = resources.files("costwarden.ledger") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(
                Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8"))
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions in {dialect}: {versions}")
    return found


def split_sqlite_script(script: str) -> list[str]:
    """Statements of a script, split where SQLite itself says a statement is complete.

    ``executescript`` would do this but commits first, which would take the migration out of
    the transaction that serialises concurrent migrators.
    """
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip() and not _only_comments(pending):
        raise ValueError(f"incomplete SQL statement at end of migration: {pending.strip()!r}")
    return statements


def _only_comments(text: str) -> bool:
    return all(not ln.strip() or ln.strip().startswith("--") for ln in text.splitlines())


class Params:
    """Collects bound values and hands out the dialect's parameter marker ($1 or ?) for each."""

    def __init__(self, param_marker: Callable[[int], str]) -> None:
        self._param_marker = param_marker
        self.values: list[Any] = []

    def bind(self, value: Any) -> str:
        self.values.append(value)
        return self._param_marker(len(self.values))


@dataclass(frozen=True, slots=True)
class Dialect:
    param_marker: Callable[[int], str]
    time_value: Callable[[datetime], Any]  # a since/until bound → the column's type
    dimension_value: Callable[[str, str], Any]  # (dimension, filter text) → column's type
    cost_sum: str  # aggregate that sums ``cost`` exactly


def where_sql(
    params: Params,
    dialect: Dialect,
    since: datetime | None,
    until: datetime | None,
    filters: Mapping[str, str] | None,
) -> str:
    check_dimensions(filters or {})
    clauses = []
    if since is not None:
        clauses.append(f"created_at >= {params.bind(dialect.time_value(since))}")
    if until is not None:
        clauses.append(f"created_at < {params.bind(dialect.time_value(until))}")
    for name, text in (filters or {}).items():
        if name == "day":
            _check_day(text)
        value = dialect.dimension_value(name, text)
        clauses.append(f"{DIMENSIONS[name]} = {params.bind(value)}")
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


def _check_day(text: str) -> None:
    try:
        date.fromisoformat(text)
    except ValueError:
        raise ReportQueryError(f"day filter must be a date like 2026-01-31, not {text!r}") from None


def count_sql(
    dialect: Dialect,
    since: datetime | None,
    until: datetime | None,
    filters: Mapping[str, str] | None,
) -> tuple[str, list[Any]]:
    params = Params(dialect.param_marker)
    where = where_sql(params, dialect, since, until, filters)
    return f"SELECT COUNT(*) FROM usage_records{where}", params.values  # noqa: S608


def spend_sql(
    dialect: Dialect,
    group_by: Sequence[str],
    since: datetime | None,
    until: datetime | None,
    filters: Mapping[str, str] | None,
) -> tuple[str, list[Any]]:
    """One row per group: group values…, requests, input, output, cached, cost, unknown."""
    check_dimensions(group_by)
    if len(set(group_by)) != len(group_by):
        raise ValueError(f"group_by repeats a dimension: {list(group_by)}")
    params = Params(dialect.param_marker)
    where = where_sql(params, dialect, since, until, filters)
    exprs = [DIMENSIONS[g] for g in group_by]
    columns = [*exprs, "COUNT(*)"]
    columns += [f"COALESCE(SUM({c}), 0)" for c in ("input_tokens", "output_tokens")]
    columns += ["COALESCE(SUM(cache_read_tokens), 0)", dialect.cost_sum]
    columns.append("COUNT(*) - COUNT(cost)")
    group = (" GROUP BY " + ", ".join(exprs)) if exprs else ""
    sql = f"SELECT {', '.join(columns)} FROM usage_records{where}{group}"  # noqa: S608
    return sql, params.values


def spend_row(group_by: Sequence[str], values: Sequence[Any]) -> SpendRow:
    """A SpendRow from one result row of ``spend_sql`` (whatever the backend's types)."""
    n = len(group_by)
    group = {g: (None if v is None else str(v)) for g, v in zip(group_by, values[:n], strict=True)}
    requests, input_tokens, output_tokens, cached, cost, unknown = values[n:]
    return SpendRow(
        group=group,
        requests=int(requests),
        input_tokens=int(input_tokens),
        output_tokens=int(output_tokens),
        cached_tokens=int(cached),
        cost=Decimal(cost) if cost is not None else Decimal(0),
        unknown_cost_requests=int(unknown),
    )


def list_records_sql(
    dialect: Dialect,
    since: datetime | None,
    until: datetime | None,
    filters: Mapping[str, str] | None,
    *,
    limit: int,
    before: datetime | None,
) -> tuple[str, list[Any]]:
    """Newest records first; walks the created_at index backwards until ``limit`` match."""
    params = Params(dialect.param_marker)
    where = where_sql(params, dialect, since, until, filters)
    if before is not None:
        joiner = " AND " if where else " WHERE "
        where += f"{joiner}created_at < {params.bind(dialect.time_value(before))}"
    limit_marker = params.bind(max(0, int(limit)))
    sql = f"SELECT * FROM usage_records{where} ORDER BY created_at DESC LIMIT {limit_marker}"  # noqa: S608
    return sql, params.values
