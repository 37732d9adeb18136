"""The SQLite store's monitoring tables: the rollup cube, the alert log, leader leases and the
price watch's state (``SqliteStore`` mixes this in; the SQL lives in ``sqlite_rollups.py`` and
``watch.py``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from costwarden.ledger import sqlite_rollups as rollups
from costwarden.ledger import watch
from costwarden.ledger.cube import CubeRow, Grain, cube_row, cube_sql, sort_cube_rows
from costwarden.ledger.sql import Params
from costwarden.ledger.sqlite_rows import sqlite_timestamp, write_transaction
from costwarden.ledger.store import StoredAlert

T = TypeVar("T")


def _marker(_index: int) -> str:
    return "?"


class SqliteMonitorTables:
    """Needs ``_run`` (the writer connection's thread) and ``_read`` (the reader's)."""

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    # -- rollups -------------------------------------------------------------------------
    async def cube(
        self,
        grain: Grain,
        group_by: Sequence[str],
        since: datetime,
        until: datetime,
        filters: Mapping[str, str | None] | None = None,
    ) -> list[CubeRow]:
        params = Params(_marker)
        sql = cube_sql(
            params, sqlite_timestamp, grain, group_by, since=since, until=until,
            filters=filters or {},
        )
        result = await self._run(lambda conn: conn.execute(sql, params.values).fetchall())
        return sort_cube_rows([cube_row(group_by, tuple(r)) for r in result], group_by)

    async def refresh_rollups(self, max_hours: int = 48) -> int:
        dirty = await self._run(lambda conn: rollups.dirty_hours(conn, max_hours))
        for hour, version in dirty:
            rows = await self._read(partial(rollups.read_hour, hour=hour))
            write = partial(
                rollups.write_hour, hour=hour, version=version, rows=rows,
                transaction=write_transaction,
            )
            await self._run(write)
        hours = [hour for hour, _ in dirty]
        await self._run(lambda conn: rollups.refresh_days(conn, hours, write_transaction))
        return len(dirty)

    async def mark_rollups_dirty(self) -> int:
        def mark(conn: sqlite3.Connection) -> int:
            with write_transaction(conn):
                return rollups.mark_all_dirty(conn)

        return await self._run(mark)

    # -- alert log and leader leases -----------------------------------------------------
    async def record_alerts(self, alerts: Sequence[StoredAlert]) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            with write_transaction(conn):
                rollups.insert_alerts(conn, alerts, sqlite_timestamp)

        if alerts:
            await self._run(insert)

    async def list_alerts(
        self,
        since: datetime,
        until: datetime,
        kinds: Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[StoredAlert]:
        since_text, until_text = sqlite_timestamp(since), sqlite_timestamp(until)
        return await self._run(
            lambda conn: rollups.select_alerts(conn, since_text, until_text, kinds, limit)
        )

    async def try_lease(self, name: str, holder: str, ttl_s: float, now: float) -> bool:
        def take(conn: sqlite3.Connection) -> bool:
            with write_transaction(conn):
                return rollups.take_lease(conn, name, holder, ttl_s, now)

        return await self._run(take)

    # -- price watch ---------------------------------------------------------------------
    async def last_billed_prices(self, since: datetime, until: datetime) -> list[watch.BilledPrice]:
        sql = watch.last_billed_sql(_marker, "json_array_length(attempts) = 1")
        params = (sqlite_timestamp(since), sqlite_timestamp(until))
        rows = await self._run(lambda conn: conn.execute(sql, params).fetchall())
        return [watch.billed_price(tuple(row)) for row in rows]

    async def version_sightings(
        self, since: datetime, until: datetime
    ) -> list[watch.VersionSighting]:
        sql = watch.version_sightings_sql(_marker)
        params = (sqlite_timestamp(since), sqlite_timestamp(until))
        rows = await self._run(lambda conn: conn.execute(sql, params).fetchall())
        return [watch.version_sighting(tuple(row)) for row in rows]

    async def price_watch_state(self) -> watch.WatchState:
        def fetch(conn: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
            observations = conn.execute(watch.SELECT_OBSERVATIONS).fetchall()
            return observations, conn.execute(watch.SELECT_SIGHTINGS).fetchall()

        observations, sightings = await self._run(fetch)
        return watch.watch_state(observations, sightings)

    async def save_price_watch_state(
        self,
        observations: Sequence[watch.PriceObservation],
        sightings: Sequence[watch.VersionSighting],
    ) -> None:
        cards = [watch.observation_values(o, sqlite_timestamp, str) for o in observations]
        marks = [watch.sighting_values(s, sqlite_timestamp) for s in sightings]
        upsert = watch.upsert_observation_sql(_marker)
        insert = watch.insert_sighting_sql(_marker)

        def save(conn: sqlite3.Connection) -> None:
            with write_transaction(conn):
                conn.executemany(upsert, cards)
                conn.executemany(insert, marks)

        await self._run(save)
