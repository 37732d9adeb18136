"""PostgreSQL ledger backend (asyncpg pool): the shared ledger of several gateway replicas.

Costs are NUMERIC, so ``SUM(cost)`` is exact in the database. Migrations take a transaction
advisory lock so that replicas starting together apply each migration once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from costwarden.ledger import postgres_rollups as rollups
from costwarden.ledger import watch
from costwarden.ledger.cube import CubeRow, Grain, cube_row, cube_sql, sort_cube_rows
from costwarden.ledger.rows import LedgerRow, as_utc, record_from_columns, row_from_line
from costwarden.ledger.sql import (
    INTERRUPTED_MESSAGE,
    Dialect,
    Params,
    count_sql,
    interrupt_in_flight_sql,
    list_records_sql,
    load_migrations,
    spend_row,
    spend_sql,
    upsert_record_sql,
)
from costwarden.ledger.store import (
    Checkpoint,
    SpendRow,
    StoredAlert,
    VirtualKey,
    budget_rule_from_json,
    budget_rule_json,
    budget_rule_name,
    sort_spend_rows,
)
from costwarden.policy.config import BudgetRule
from costwarden.records import UsageRecord, utcnow

# Any constant works; it only has to be the same in every replica ("cw-migr" in ASCII).
_MIGRATION_LOCK_ID = 0x63772D6D696772

# Only constant column names are formatted in; every value is a bound parameter.
_INSERT_RECORD = upsert_record_sql(lambda index: f"${index}")
_INTERRUPT_IN_FLIGHT = interrupt_in_flight_sql(lambda index: f"${index}")
# GREATEST(): a checkpoint only moves forward, even if two writers ever raced on one segment.
_UPSERT_CHECKPOINT = (
    "INSERT INTO spool_checkpoints (segment, byte_offset, updated_at) VALUES ($1, $2, $3) "
    "ON CONFLICT (segment) DO UPDATE SET "
    "byte_offset = GREATEST(spool_checkpoints.byte_offset, EXCLUDED.byte_offset), "
    "updated_at = EXCLUDED.updated_at"
)
# created_at survives a replacement; only the rule and updated_at change.
_UPSERT_BUDGET = (
    "INSERT INTO policy_budgets (name, rule, created_at, updated_at) "
    "VALUES ($1, $2::jsonb, $3, $3) "
    "ON CONFLICT (name) DO UPDATE SET rule = EXCLUDED.rule, updated_at = EXCLUDED.updated_at"
)
# NUL in a text value, and "\u0000" in a jsonb one.
_NUL_ERRORS = (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError)
_KEY_COLUMNS = "key_id, key_prefix, user_id, team, name, metadata, created_at, revoked_at"


def _dimension_value(name: str, text: str) -> Any:
    return date.fromisoformat(text) if name == "day" else text


_DIALECT = Dialect(
    param_marker=lambda index: f"${index}",
    time_value=as_utc,
    dimension_value=_dimension_value,
    cost_sum="SUM(cost)",
)


def _key_from_row(row: Mapping[str, Any]) -> VirtualKey:
    return VirtualKey(
        key_id=row["key_id"],
        prefix=row["key_prefix"],
        user=row["user_id"],
        team=row["team"],
        name=row["name"],
        metadata=orjson.loads(row["metadata"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


class PostgresStore:
    """``Store`` over a PostgreSQL database (see module docstring)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(
        cls, dsn: str, *, min_size: int = 1, max_size: int = 4, command_timeout_s: float = 30.0
    ) -> PostgresStore:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, command_timeout=command_timeout_s
        )
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    async def migrate(self) -> None:
        migrations = load_migrations("postgres")
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK_ID)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for migration in migrations:
                if migration.version in done:
                    continue
                await conn.execute(migration.sql)  # no arguments: multi-statement allowed
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1,$2,$3)",
                    migration.version,
                    migration.name,
                    utcnow(),
                )

    # -- usage records -------------------------------------------------------------------
    def row_values(self, line: Mapping[str, Any], spool_writer: str) -> Sequence[Any]:
        return row_from_line(line, spool_writer)  # asyncpg binds Decimal and datetime itself

    async def insert_rows(
        self, rows: Sequence[LedgerRow], checkpoint: Checkpoint | None = None
    ) -> None:
        await self.insert_values(rows, checkpoint)

    async def insert_values(
        self, values: Sequence[Sequence[Any]], checkpoint: Checkpoint | None = None
    ) -> None:
        try:
            await self._insert_values(values, checkpoint)
        except _NUL_ERRORS:
            # PostgreSQL text and jsonb cannot hold NUL, which SQLite stores. Left as it is, a
            # record carrying one (a client's model name, an upstream's error text) fails its
            # whole batch, and the copier retries that batch forever. Checked only on failure:
            # scanning every row for NUL would cost the copy a few per cent.
            await self._insert_values([_without_nul(row) for row in values], checkpoint)

    async def _insert_values(
        self, values: Sequence[Sequence[Any]], checkpoint: Checkpoint | None
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            if values:
                await conn.executemany(_INSERT_RECORD, values)
                await rollups.mark_dirty(conn, values)
            if checkpoint is not None:
                await conn.execute(
                    _UPSERT_CHECKPOINT, checkpoint.segment, checkpoint.byte_offset, utcnow()
                )

    async def interrupt_in_flight(self, spool_writer: str) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            await rollups.mark_dirty_where(
                conn, "status = 'in_flight' AND spool_writer = $1", spool_writer
            )
            status = await conn.execute(_INTERRUPT_IN_FLIGHT, INTERRUPTED_MESSAGE, spool_writer)
        return int(status.rsplit(" ", 1)[1])  # "UPDATE <count>"

    async def get_record(self, request_id: str) -> UsageRecord | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM usage_records WHERE request_id = $1", request_id
        )
        return record_from_columns(row) if row is not None else None

    async def count_records(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        filters: Mapping[str, str] | None = None,
    ) -> int:
        sql, params = count_sql(_DIALECT, since, until, filters)
        return int(await self._pool.fetchval(sql, *params))

    async def all_request_ids(self) -> set[str]:
        rows = await self._pool.fetch("SELECT request_id FROM usage_records")
        return {r["request_id"] for r in rows}

    async def spend(
        self,
        group_by: Sequence[str],
        since: datetime | None = None,
        until: datetime | None = None,
        filters: Mapping[str, str] | None = None,
    ) -> list[SpendRow]:
        sql, params = spend_sql(_DIALECT, group_by, since, until, filters)
        result = await self._pool.fetch(sql, *params)
        rows = [spend_row(group_by, tuple(r.values())) for r in result]
        return sort_spend_rows([r for r in rows if r.requests], group_by)

    async def savings_lists(self, since: datetime, until: datetime) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT savings::text AS savings FROM usage_records "
            "WHERE created_at >= $1 AND created_at < $2 AND savings IS NOT NULL",
            since,
            until,
        )
        return [str(row["savings"]) for row in rows]

    async def list_records(
        self,
        since: datetime | None,
        until: datetime | None,
        filters: Mapping[str, str] | None,
        limit: int,
        before: datetime | None = None,
    ) -> list[UsageRecord]:
        sql, params = list_records_sql(
            _DIALECT, since, until, filters, limit=limit, before=before
        )
        return [record_from_columns(row) for row in await self._pool.fetch(sql, *params)]

    # -- rollups -------------------------------------------------------------------------
    async def cube(
        self,
        grain: Grain,
        group_by: Sequence[str],
        since: datetime,
        until: datetime,
        filters: Mapping[str, str | None] | None = None,
    ) -> list[CubeRow]:
        params = Params(_DIALECT.param_marker)
        sql = cube_sql(
            params, as_utc, grain, group_by, since=since, until=until, filters=filters or {}
        )
        result = await self._pool.fetch(sql, *params.values)
        return sort_cube_rows([cube_row(group_by, tuple(r.values())) for r in result], group_by)

    async def refresh_rollups(self, max_hours: int = 48) -> int:
        return await rollups.refresh(self._pool, max_hours)

    async def mark_rollups_dirty(self) -> int:
        async with self._pool.acquire() as conn:
            return await rollups.mark_all_dirty(conn)

    # -- alert log and leader leases -----------------------------------------------------
    async def record_alerts(self, alerts: Sequence[StoredAlert]) -> None:
        if alerts:
            await rollups.insert_alerts(self._pool, alerts)

    async def list_alerts(
        self,
        since: datetime,
        until: datetime,
        kinds: Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[StoredAlert]:
        return await rollups.select_alerts(self._pool, as_utc(since), as_utc(until), kinds, limit)

    async def try_lease(self, name: str, holder: str, ttl_s: float, now: float) -> bool:
        return await rollups.take_lease(self._pool, name, holder, ttl_s, now)

    # -- spool checkpoints ---------------------------------------------------------------
    async def get_checkpoint(self, segment: str) -> int | None:
        value = await self._pool.fetchval(
            "SELECT byte_offset FROM spool_checkpoints WHERE segment = $1", segment
        )
        return None if value is None else int(value)

    async def delete_checkpoint(self, segment: str) -> None:
        await self._pool.execute("DELETE FROM spool_checkpoints WHERE segment = $1", segment)

    # -- virtual keys --------------------------------------------------------------------
    async def create_key(self, key: VirtualKey, key_hash: str) -> None:
        await self._pool.execute(
            "INSERT INTO virtual_keys (key_id, key_hash, key_prefix, user_id, team, name, "
            "metadata, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
            key.key_id,
            key_hash,
            key.prefix,
            key.user,
            key.team,
            key.name,
            orjson.dumps(key.metadata).decode(),
            as_utc(key.created_at),
        )

    async def list_keys(self, include_revoked: bool = False) -> list[VirtualKey]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        rows = await self._pool.fetch(
            f"SELECT {_KEY_COLUMNS} FROM virtual_keys{where} ORDER BY created_at, key_id"  # noqa: S608
        )
        return [_key_from_row(r) for r in rows]

    async def revoke_key(self, key_id: str, revoked_at: datetime) -> bool:
        status = await self._pool.execute(
            "UPDATE virtual_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL",
            as_utc(revoked_at),
            key_id,
        )
        return bool(status == "UPDATE 1")

    async def find_key_by_hash(self, key_hash: str) -> VirtualKey | None:
        row = await self._pool.fetchrow(
            f"SELECT {_KEY_COLUMNS} FROM virtual_keys WHERE key_hash = $1",  # noqa: S608
            key_hash,
        )
        return None if row is None else _key_from_row(row)

    # -- budgets managed at run time -----------------------------------------------------
    async def list_budget_rules(self) -> list[BudgetRule]:
        # rule::text: asyncpg hands jsonb over as text anyway; the cast makes that explicit.
        rows = await self._pool.fetch("SELECT name, rule::text AS rule FROM policy_budgets")
        rules = [budget_rule_from_json(r["name"], r["rule"]) for r in rows]
        return sorted(rules, key=budget_rule_name)  # the same order as SQLite, any collation

    async def upsert_budget_rule(self, rule: BudgetRule) -> None:
        await self._pool.execute(
            _UPSERT_BUDGET, budget_rule_name(rule), budget_rule_json(rule), utcnow()
        )

    async def delete_budget_rule(self, name: str) -> bool:
        status = await self._pool.execute("DELETE FROM policy_budgets WHERE name = $1", name)
        return bool(status == "DELETE 1")

    # -- price watch ---------------------------------------------------------------------
    async def last_billed_prices(self, since: datetime, until: datetime) -> list[watch.BilledPrice]:
        sql = watch.last_billed_sql(_DIALECT.param_marker, "jsonb_array_length(attempts) = 1")
        rows = await self._pool.fetch(sql, as_utc(since), as_utc(until))
        return [watch.billed_price(tuple(row.values())) for row in rows]

    async def version_sightings(
        self, since: datetime, until: datetime
    ) -> list[watch.VersionSighting]:
        sql = watch.version_sightings_sql(_DIALECT.param_marker)
        rows = await self._pool.fetch(sql, as_utc(since), as_utc(until))
        return [watch.version_sighting(tuple(row.values())) for row in rows]

    async def price_watch_state(self) -> watch.WatchState:
        observations = await self._pool.fetch(watch.SELECT_OBSERVATIONS)
        sightings = await self._pool.fetch(watch.SELECT_SIGHTINGS)
        return watch.watch_state(
            [tuple(r.values()) for r in observations], [tuple(r.values()) for r in sightings]
        )

    async def save_price_watch_state(
        self,
        observations: Sequence[watch.PriceObservation],
        sightings: Sequence[watch.VersionSighting],
    ) -> None:
        cards = [watch.observation_values(o, as_utc, _same) for o in observations]
        marks = [watch.sighting_values(s, as_utc) for s in sightings]
        async with self._pool.acquire() as conn, conn.transaction():
            if cards:
                await conn.executemany(watch.upsert_observation_sql(_DIALECT.param_marker), cards)
            if marks:
                await conn.executemany(watch.insert_sighting_sql(_DIALECT.param_marker), marks)


def _without_nul(values: Sequence[Any]) -> Sequence[Any]:
    """The row with each NUL stored as U+FFFD, in text and in JSON escapes (jsonb)."""
    return tuple(
        v.replace("\x00", "\ufffd").replace("\\u0000", "\\ufffd") if isinstance(v, str) else v
        for v in values
    )


def _same(amount: Decimal) -> Decimal:
    return amount  # asyncpg binds a Decimal to NUMERIC exactly as it is
