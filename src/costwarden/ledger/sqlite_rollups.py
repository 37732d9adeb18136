"""SQLite side of the rollups (``ledger/cube.py``), the alert log and leader leases.

Plain functions over one ``sqlite3.Connection``; ``SqliteStore`` runs them on its thread.
"""

from __future__ import annotations

import decimal
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from costwarden.ledger.cube import (
    CUBE_COLUMNS,
    CUBE_INSERT,
    DAY,
    HOUR,
    day_from_hours_sql,
    hour_select_sql,
    narrow_refresh_sql,
    usd_to_nano,
)
from costwarden.ledger.rows import COLUMNS
from costwarden.ledger.store import StoredAlert

_CREATED_AT = COLUMNS.index("created_at")
# created_at is fixed-width text (YYYY-MM-DDTHH:MM:SS.ffffff+00:00): the hour is its first 13.
_HOUR_SUFFIX = ":00:00.000000+00:00"
_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)

_MARK_DIRTY = (
    "INSERT INTO rollup_dirty (hour, version) VALUES (?, 1) "
    "ON CONFLICT (hour) DO UPDATE SET version = version + 1"
)
_HOUR_FROM_RECORDS = hour_select_sql(lambda i: f"?{i}", lambda column: f"nano_sum({column})")
_INSERT_CUBE_ROW = f"{CUBE_INSERT}VALUES ({', '.join('?' for _ in CUBE_COLUMNS)})"
_DAY_FROM_HOURS = day_from_hours_sql(lambda index: f"?{index}")
_NARROW_DELETE, _NARROW_INSERTS = narrow_refresh_sql(lambda index: f"?{index}")
_TAKE_LEASE = (
    "INSERT INTO monitor_leases (name, holder, expires_at) VALUES (?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
    "WHERE monitor_leases.holder = excluded.holder OR monitor_leases.expires_at <= ?"
)


class NanoSum:
    """SQLite aggregate ``nano_sum(text)``: the exact sum of decimal text, in nano-dollars
    rounded once (so a cube cell carries one rounding, not one per record)."""

    def __init__(self) -> None:
        self.total = Decimal(0)

    def step(self, value: str | None) -> None:
        if value is not None:
            self.total = _EXACT.add(self.total, Decimal(value))

    def finalize(self) -> int:
        return usd_to_nano(self.total)


def register_functions(conn: sqlite3.Connection) -> None:
    conn.create_aggregate("nano_sum", 1, NanoSum)  # type: ignore[arg-type]


def hour_text(created_at_text: str) -> str:
    return created_at_text[:13] + _HOUR_SUFFIX


def mark_dirty(conn: sqlite3.Connection, values: Iterable[Sequence[Any]]) -> None:
    """Mark the hours of these rows (``COLUMNS`` order, SQLite types) dirty; runs inside the
    writer's transaction. Hours in order, so two writers never wait on each other in a cycle."""
    hours = sorted({hour_text(v[_CREATED_AT]) for v in values})
    conn.executemany(_MARK_DIRTY, [(h,) for h in hours])


def mark_dirty_where(conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> None:
    """Mark the hours of the records matching ``where`` dirty (before an UPDATE of them)."""
    rows = conn.execute(
        f"SELECT DISTINCT substr(created_at, 1, 13) FROM usage_records WHERE {where}",  # noqa: S608
        params,
    ).fetchall()
    conn.executemany(_MARK_DIRTY, [(r[0] + _HOUR_SUFFIX,) for r in rows])


def mark_all_dirty(conn: sqlite3.Connection) -> int:
    cursor = conn.execute(
        "INSERT INTO rollup_dirty (hour, version) "  # noqa: S608 (a constant suffix)
        f"SELECT DISTINCT substr(created_at, 1, 13) || '{_HOUR_SUFFIX}', 1 FROM usage_records "
        "WHERE true ON CONFLICT (hour) DO UPDATE SET version = version + 1"
    )
    return cursor.rowcount


WriteTransaction = Callable[[sqlite3.Connection], AbstractContextManager[None]]


def dirty_hours(conn: sqlite3.Connection, max_hours: int) -> list[tuple[str, int]]:
    rows = conn.execute(
        "SELECT hour, version FROM rollup_dirty ORDER BY hour LIMIT ?", (max_hours,)
    ).fetchall()
    return [(str(r[0]), int(r[1])) for r in rows]


def read_hour(conn: sqlite3.Connection, hour: str) -> list[tuple[Any, ...]]:
    """The hour's cube rows, computed from its records. Runs on a reader connection, outside
    any write transaction, so the ledger writer is not held up while an hour is summed."""
    end = _text(datetime.fromisoformat(hour) + HOUR)
    return [tuple(r) for r in conn.execute(_HOUR_FROM_RECORDS, (hour, end))]


def write_hour(conn: sqlite3.Connection, hour: str, version: int, rows: Sequence[Sequence[Any]],
               transaction: WriteTransaction) -> None:
    """Replace the hour's cube rows; clear its mark only if no row landed since it was read."""
    with transaction(conn):
        conn.execute("DELETE FROM usage_cube WHERE grain = 'hour' AND start = ?", (hour,))
        conn.executemany(_INSERT_CUBE_ROW, rows)
        _refresh_narrow(conn, "hour", hour)
        conn.execute("DELETE FROM rollup_dirty WHERE hour = ? AND version = ?", (hour, version))


def refresh_days(conn: sqlite3.Connection, hours: Iterable[str], transaction: WriteTransaction
                 ) -> None:
    """Recompute the day rows of the days these hours fall in, from their hour rows."""
    for day in sorted({h[:10] for h in hours}):
        with transaction(conn):
            _recompute_day(conn, day)


def _recompute_day(conn: sqlite3.Connection, day: str) -> None:
    start = f"{day}T00{_HOUR_SUFFIX}"
    end = _text(datetime.fromisoformat(start) + DAY)
    conn.execute("DELETE FROM usage_cube WHERE grain = 'day' AND start = ?", (start,))
    conn.execute(_DAY_FROM_HOURS, (start, end))
    _refresh_narrow(conn, "day", start)


def _refresh_narrow(conn: sqlite3.Connection, grain: str, start: str) -> None:
    conn.execute(_NARROW_DELETE, (grain, start))
    for insert in _NARROW_INSERTS:
        conn.execute(insert, (grain, start))


def _text(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


# -- alert log --------------------------------------------------------------------------------
_INSERT_ALERT = (
    "INSERT INTO alert_events (at, kind, severity, title, text, scope, dedup_key, fields) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def insert_alerts(conn: sqlite3.Connection, alerts: Sequence[StoredAlert],
                  time_text: Callable[[datetime], str]) -> None:
    conn.executemany(
        _INSERT_ALERT,
        [
            (time_text(a.at), a.kind, a.severity, a.title, a.text, a.scope, a.dedup_key,
             orjson.dumps(a.fields).decode())
            for a in alerts
        ],
    )


def select_alerts(conn: sqlite3.Connection, since: str, until: str,
                  kinds: Sequence[str] | None, limit: int) -> list[StoredAlert]:
    clauses = ["at >= ?", "at < ?"]
    params: list[Any] = [since, until]
    if kinds:
        # "anomaly" matches "anomaly" and "anomaly.spend", never "anomalyx".
        clauses.append("(" + " OR ".join("kind = ? OR substr(kind, 1, ?) = ?" for _ in kinds) + ")")
        for kind in kinds:
            params += [kind, len(kind) + 1, kind + "."]
    sql = (
        "SELECT alert_id, at, kind, severity, title, text, scope, dedup_key, fields "  # noqa: S608
        f"FROM alert_events WHERE {' AND '.join(clauses)} ORDER BY at DESC, alert_id DESC LIMIT ?"
    )
    rows = conn.execute(sql, [*params, limit]).fetchall()
    return [StoredAlert.from_row(r) for r in rows]


def take_lease(conn: sqlite3.Connection, name: str, holder: str, ttl_s: float, now: float
               ) -> bool:
    cursor = conn.execute(_TAKE_LEASE, (name, holder, now + ttl_s, now))
    return cursor.rowcount == 1
