"""PostgreSQL side of the rollups (``ledger/cube.py``), the alert log and leader leases.

Several replicas may refresh at once: each hour is recomputed under a transaction advisory
lock keyed by the hour, so two refreshers never interleave their delete and insert of one hour's
cube rows; the version check on the dirty mark does the rest (see ``cube.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from costwarden.ledger.cube import (
    CUBE_INSERT,
    DAY,
    HOUR,
    day_from_hours_sql,
    floor_day,
    floor_hour,
    hour_select_sql,
    narrow_refresh_sql,
)
from costwarden.ledger.rows import COLUMNS
from costwarden.ledger.store import StoredAlert

_CREATED_AT = COLUMNS.index("created_at")
# Any constant works, the same in every replica ("cw-cube" in ASCII), plus the hour's epoch.
_ROLLUP_LOCK_BASE = 0x63772D63756265

_MARK_DIRTY = (
    "INSERT INTO rollup_dirty (hour, version) VALUES ($1, 1) "
    "ON CONFLICT (hour) DO UPDATE SET version = rollup_dirty.version + 1"
)
# ROUND(numeric) rounds half away from zero (SQLite's nano_sum: half-even); they can differ
# only on a cell whose exact sum ends in exactly half a nano-dollar.
_HOUR_FROM_RECORDS = CUBE_INSERT + hour_select_sql(
    lambda index: f"${index}",
    lambda column: f"ROUND(COALESCE(SUM({column}), 0) * 1000000000)::BIGINT",
)
_DAY_FROM_HOURS = day_from_hours_sql(lambda index: f"${index}")
_NARROW_DELETE, _NARROW_INSERTS = narrow_refresh_sql(lambda index: f"${index}")
_TAKE_LEASE = (
    "INSERT INTO monitor_leases (name, holder, expires_at) VALUES ($1, $2, $3) "
    "ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at "
    "WHERE monitor_leases.holder = EXCLUDED.holder OR monitor_leases.expires_at <= $4"
)


def hours_of(values: Iterable[Sequence[Any]]) -> list[datetime]:
    """The distinct UTC hours of rows in ``COLUMNS`` order, ascending (a fixed lock order)."""
    return sorted({floor_hour(v[_CREATED_AT]) for v in values})


async def mark_dirty(conn: asyncpg.Connection, values: Iterable[Sequence[Any]]) -> None:
    await conn.executemany(_MARK_DIRTY, [(h,) for h in hours_of(values)])


async def mark_dirty_where(conn: asyncpg.Connection, where: str, *params: Any) -> None:
    rows = await conn.fetch(
        "SELECT DISTINCT date_trunc('hour', created_at, 'UTC') AS hour "  # noqa: S608
        f"FROM usage_records WHERE {where} ORDER BY hour",
        *params,
    )
    await conn.executemany(_MARK_DIRTY, [(r["hour"],) for r in rows])


async def mark_all_dirty(conn: asyncpg.Connection) -> int:
    status = await conn.execute(
        "INSERT INTO rollup_dirty (hour, version) "
        "SELECT DISTINCT date_trunc('hour', created_at, 'UTC'), 1 FROM usage_records "
        "ON CONFLICT (hour) DO UPDATE SET version = rollup_dirty.version + 1"
    )
    return int(str(status).rsplit(" ", 1)[1])


async def refresh(pool: asyncpg.Pool, max_hours: int) -> int:
    dirty = await pool.fetch(
        "SELECT hour, version FROM rollup_dirty ORDER BY hour LIMIT $1", max_hours
    )
    days: set[datetime] = set()
    async with pool.acquire() as conn:
        for row in dirty:
            hour: datetime = row["hour"].astimezone(UTC)
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_id(hour))
                await conn.execute(
                    "DELETE FROM usage_cube WHERE grain = 'hour' AND start = $1", hour
                )
                await conn.execute(_HOUR_FROM_RECORDS, hour, hour + HOUR)
                await _refresh_narrow(conn, "hour", hour)
                await conn.execute(
                    "DELETE FROM rollup_dirty WHERE hour = $1 AND version = $2",
                    hour,
                    row["version"],
                )
            days.add(floor_day(hour))
        for day in sorted(days):
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_id(day) + 1)
                await conn.execute("DELETE FROM usage_cube WHERE grain = 'day' AND start = $1", day)
                await conn.execute(_DAY_FROM_HOURS, day, day + DAY)
                await _refresh_narrow(conn, "day", day)
    return len(dirty)


async def _refresh_narrow(conn: asyncpg.Connection, grain: str, start: datetime) -> None:
    await conn.execute(_NARROW_DELETE, grain, start)
    for insert in _NARROW_INSERTS:
        await conn.execute(insert, grain, start)


def _lock_id(moment: datetime) -> int:
    # Hours are multiples of 3600 s, so "+ 1" for the day lock never meets an hour's lock.
    return _ROLLUP_LOCK_BASE + int(moment.timestamp())


async def insert_alerts(pool: asyncpg.Pool, alerts: Sequence[StoredAlert]) -> None:
    await pool.executemany(
        "INSERT INTO alert_events (at, kind, severity, title, text, scope, dedup_key, fields) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)",
        [
            (a.at, a.kind, a.severity, a.title, a.text, a.scope, a.dedup_key,
             orjson.dumps(a.fields).decode())
            for a in alerts
        ],
    )


async def select_alerts(pool: asyncpg.Pool, since: datetime, until: datetime,
                        kinds: Sequence[str] | None, limit: int) -> list[StoredAlert]:
    clauses = ["at >= $1", "at < $2"]
    params: list[Any] = [since, until]
    for kind in kinds or ():
        params += [kind, kind + "."]
        n = len(params)
        clauses.append(f"kind = ${n - 1} OR starts_with(kind, ${n})")
    where = " AND ".join(clauses[:2])
    if kinds:
        where += " AND (" + " OR ".join(clauses[2:]) + ")"
    params.append(limit)
    rows = await pool.fetch(
        "SELECT alert_id, at, kind, severity, title, text, scope, dedup_key, "  # noqa: S608
        f"fields::text AS fields FROM alert_events WHERE {where} "
        f"ORDER BY at DESC, alert_id DESC LIMIT ${len(params)}",
        *params,
    )
    return [StoredAlert.from_row(r) for r in rows]


async def take_lease(pool: asyncpg.Pool, name: str, holder: str, ttl_s: float, now: float
                     ) -> bool:
    status = await pool.execute(_TAKE_LEASE, name, holder, now + ttl_s, now)
    return bool(status == "INSERT 0 1")
