"""PostgreSQL ledger backend (asyncpg pool): the shared ledger of several gateway replicas.

Costs are NUMERIC, so ``SUM(cost)`` is exact in the database. Migrations take a transaction
advisory lock so that replicas starting together apply each migration once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import asyncpg
import orjson

from costwarden.ledger.rows import LedgerRow, as_utc, record_from_columns, row_from_line
from costwarden.ledger.sql import (
    INTERRUPTED_MESSAGE,
    Dialect,
    count_sql,
    interrupt_in_flight_sql,
    load_migrations,
    spend_row,
    spend_sql,
    upsert_record_sql,
)
from costwarden.ledger.store import (
    Checkpoint,
    SpendRow,
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
        async with self._pool.acquire() as conn, conn.transaction():
            if values:
                await conn.executemany(_INSERT_RECORD, values)
            if checkpoint is not None:
                await conn.execute(
                    _UPSERT_CHECKPOINT, checkpoint.segment, checkpoint.byte_offset, utcnow()
                )

    async def interrupt_in_flight(self, spool_writer: str) -> int:
        status = await self._pool.execute(_INTERRUPT_IN_FLIGHT, INTERRUPTED_MESSAGE, spool_writer)
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
