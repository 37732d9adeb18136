"""SQLite ledger backend: the embedded default, no server needed.

One connection lives on one dedicated worker thread, so the event loop never blocks on disk
and the connection is never shared across threads; a second, on a thread of its own, serves
the long reads that fold an hour into the rollups (``sqlite_monitor.py``), so they never hold
up the writer. WAL mode lets readers (reports) run while
the writer commits; ``busy_timeout`` makes writers of several processes wait for each other
instead of failing at once. ``synchronous=FULL`` because the ledger deletes a spool segment
once its rows are committed: the commit must be on disk before the spool copy is gone.

Money is stored as the exact decimal text and summed with a Python ``Decimal`` aggregate.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from costwarden.ledger import sqlite_rollups as rollups
from costwarden.ledger.rows import LedgerRow, record_from_columns
from costwarden.ledger.sql import (
    INTERRUPTED_MESSAGE,
    Dialect,
    count_sql,
    interrupt_in_flight_sql,
    list_records_sql,
    load_migrations,
    spend_row,
    spend_sql,
    split_sqlite_script,
    upsert_record_sql,
)
from costwarden.ledger.sqlite_monitor import SqliteMonitorTables
from costwarden.ledger.sqlite_rows import (
    DecimalSum,
    sqlite_timestamp,
    sqlite_values,
    sqlite_values_from_line,
    write_transaction,
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

T = TypeVar("T")

# Only constant column names are formatted in; every value is a bound parameter.
_INSERT_RECORD = upsert_record_sql(lambda _index: "?")
_INTERRUPT_IN_FLIGHT = interrupt_in_flight_sql(lambda _index: "?")
# MAX(): a checkpoint only moves forward, even if two writers ever raced on one segment.
_UPSERT_CHECKPOINT = (
    "INSERT INTO spool_checkpoints (segment, byte_offset, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (segment) DO UPDATE SET "
    "byte_offset = MAX(byte_offset, excluded.byte_offset), updated_at = excluded.updated_at"
)
# created_at survives a replacement; only the rule and updated_at change.
_UPSERT_BUDGET = (
    "INSERT INTO policy_budgets (name, rule, created_at, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET rule = excluded.rule, updated_at = excluded.updated_at"
)
_KEY_COLUMNS = "key_id, key_prefix, user_id, team, name, metadata, created_at, revoked_at"
_DIALECT = Dialect(
    param_marker=lambda _index: "?",
    time_value=sqlite_timestamp,
    dimension_value=lambda _name, text: text,
    cost_sum="decimal_sum(cost)",
)


def _key_from_row(row: Mapping[str, Any]) -> VirtualKey:
    return VirtualKey(
        key_id=row["key_id"],
        prefix=row["key_prefix"],
        user=row["user_id"],
        team=row["team"],
        name=row["name"],
        metadata=orjson.loads(row["metadata"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        revoked_at=datetime.fromisoformat(row["revoked_at"]) if row["revoked_at"] else None,
    )


class SqliteStore(SqliteMonitorTables):
    """``Store`` over one SQLite file (see module docstring)."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 5.0) -> None:
        self._path = Path(path)
        self._busy_timeout_ms = int(busy_timeout_s * 1000)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cw-sqlite")
        self._conn: sqlite3.Connection | None = None  # touched only on the worker thread
        # Long reads (summing an hour for the cube) run on a second connection and thread, so
        # they never hold the write lock or queue behind the ledger writer, nor it behind them.
        self._reader_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cw-sqlite-r")
        self._reader: sqlite3.Connection | None = None  # touched only on the reader thread

    @property
    def path(self) -> Path:
        return self._path

    # -- plumbing ------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        # typeshed types aggregates as int-only; SQLite passes TEXT through unchanged.
        conn.create_aggregate("decimal_sum", 1, DecimalSum)  # type: ignore[arg-type]
        rollups.register_functions(conn)
        return conn

    def _on_thread(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = self._connect()
        return work(self._conn)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._on_thread, work)

    def _on_reader(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._reader is None:
            self._reader = self._connect()
        return work(self._reader)

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader_executor, self._on_reader, work)

    async def close(self) -> None:
        def close_connection(_conn: sqlite3.Connection) -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        def close_reader(_conn: sqlite3.Connection) -> None:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

        await self._run(close_connection)
        self._executor.shutdown(wait=True)
        if self._reader is not None:
            await self._read(close_reader)
        self._reader_executor.shutdown(wait=True)

    # -- schema --------------------------------------------------------------------------
    async def migrate(self) -> None:
        migrations = load_migrations("sqlite")

        def apply(conn: sqlite3.Connection) -> None:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            with write_transaction(conn):
                done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
                for migration in migrations:
                    if migration.version in done:
                        continue
                    for statement in split_sqlite_script(migration.sql):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?,?,?)",
                        (migration.version, migration.name, sqlite_timestamp(utcnow())),
                    )

        await self._run(apply)

    # -- usage records -------------------------------------------------------------------
    def row_values(self, line: Mapping[str, Any], spool_writer: str) -> Sequence[Any]:
        return sqlite_values_from_line(line, spool_writer)

    async def insert_rows(
        self, rows: Sequence[LedgerRow], checkpoint: Checkpoint | None = None
    ) -> None:
        await self.insert_values([sqlite_values(row) for row in rows], checkpoint)

    async def insert_values(
        self, values: Sequence[Sequence[Any]], checkpoint: Checkpoint | None = None
    ) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            with write_transaction(conn):
                if values:
                    conn.executemany(_INSERT_RECORD, values)
                    rollups.mark_dirty(conn, values)
                if checkpoint is not None:
                    conn.execute(
                        _UPSERT_CHECKPOINT,
                        (checkpoint.segment, checkpoint.byte_offset, sqlite_timestamp(utcnow())),
                    )

        await self._run(insert)

    async def interrupt_in_flight(self, spool_writer: str) -> int:
        def interrupt(conn: sqlite3.Connection) -> int:
            with write_transaction(conn):
                rollups.mark_dirty_where(
                    conn, "status = 'in_flight' AND spool_writer = ?", (spool_writer,)
                )
                cursor = conn.execute(_INTERRUPT_IN_FLIGHT, (INTERRUPTED_MESSAGE, spool_writer))
            return cursor.rowcount

        return await self._run(interrupt)

    async def get_record(self, request_id: str) -> UsageRecord | None:
        def fetch(conn: sqlite3.Connection) -> dict[str, Any] | None:
            cursor = conn.execute("SELECT * FROM usage_records WHERE request_id = ?", (request_id,))
            row: sqlite3.Row | None = cursor.fetchone()
            return None if row is None else dict(zip(row.keys(), row, strict=True))

        row = await self._run(fetch)
        return record_from_columns(row) if row is not None else None

    async def count_records(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        filters: Mapping[str, str] | None = None,
    ) -> int:
        sql, params = count_sql(_DIALECT, since, until, filters)
        return int(await self._run(lambda conn: conn.execute(sql, params).fetchone()[0]))

    async def savings_lists(self, since: datetime, until: datetime) -> list[str]:
        sql = (
            "SELECT savings FROM usage_records WHERE created_at >= ? AND created_at < ? "
            "AND savings IS NOT NULL"
        )
        params = (sqlite_timestamp(since), sqlite_timestamp(until))
        return await self._run(lambda conn: [r[0] for r in conn.execute(sql, params)])

    async def all_request_ids(self) -> set[str]:
        def fetch(conn: sqlite3.Connection) -> set[str]:
            return {row[0] for row in conn.execute("SELECT request_id FROM usage_records")}

        return await self._run(fetch)

    async def spend(
        self,
        group_by: Sequence[str],
        since: datetime | None = None,
        until: datetime | None = None,
        filters: Mapping[str, str] | None = None,
    ) -> list[SpendRow]:
        sql, params = spend_sql(_DIALECT, group_by, since, until, filters)
        result = await self._run(lambda conn: conn.execute(sql, params).fetchall())
        rows = [spend_row(group_by, tuple(r)) for r in result]
        return sort_spend_rows([r for r in rows if r.requests], group_by)

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

        def fetch(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            return [dict(zip(r.keys(), r, strict=True)) for r in conn.execute(sql, params)]

        return [record_from_columns(row) for row in await self._run(fetch)]

    # -- spool checkpoints ---------------------------------------------------------------
    async def get_checkpoint(self, segment: str) -> int | None:
        def fetch(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "SELECT byte_offset FROM spool_checkpoints WHERE segment = ?", (segment,)
            ).fetchone()
            return None if row is None else int(row[0])

        return await self._run(fetch)

    async def delete_checkpoint(self, segment: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            with write_transaction(conn):
                conn.execute("DELETE FROM spool_checkpoints WHERE segment = ?", (segment,))

        await self._run(delete)

    # -- virtual keys --------------------------------------------------------------------
    async def create_key(self, key: VirtualKey, key_hash: str) -> None:
        values = (
            key.key_id,
            key_hash,
            key.prefix,
            key.user,
            key.team,
            key.name,
            orjson.dumps(key.metadata).decode(),
            sqlite_timestamp(key.created_at),
        )

        def insert(conn: sqlite3.Connection) -> None:
            with write_transaction(conn):
                conn.execute(
                    "INSERT INTO virtual_keys (key_id, key_hash, key_prefix, user_id, team, "
                    "name, metadata, created_at) VALUES (?,?,?,?,?,?,?,?)",
                    values,
                )

        await self._run(insert)

    async def list_keys(self, include_revoked: bool = False) -> list[VirtualKey]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        sql = f"SELECT {_KEY_COLUMNS} FROM virtual_keys{where} ORDER BY created_at, key_id"  # noqa: S608
        rows = await self._run(lambda conn: conn.execute(sql).fetchall())
        return [_key_from_row(row) for row in rows]

    async def revoke_key(self, key_id: str, revoked_at: datetime) -> bool:
        def revoke(conn: sqlite3.Connection) -> bool:
            with write_transaction(conn):
                cursor = conn.execute(
                    "UPDATE virtual_keys SET revoked_at = ? "
                    "WHERE key_id = ? AND revoked_at IS NULL",
                    (sqlite_timestamp(revoked_at), key_id),
                )
            return cursor.rowcount == 1

        return await self._run(revoke)

    async def find_key_by_hash(self, key_hash: str) -> VirtualKey | None:
        def fetch(conn: sqlite3.Connection) -> VirtualKey | None:
            row = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM virtual_keys WHERE key_hash = ?",  # noqa: S608
                (key_hash,),
            ).fetchone()
            return None if row is None else _key_from_row(row)

        return await self._run(fetch)

    # -- budgets managed at run time -----------------------------------------------------
    async def list_budget_rules(self) -> list[BudgetRule]:
        rows = await self._run(
            lambda conn: conn.execute("SELECT name, rule FROM policy_budgets").fetchall()
        )
        rules = [budget_rule_from_json(row["name"], row["rule"]) for row in rows]
        return sorted(rules, key=budget_rule_name)

    async def upsert_budget_rule(self, rule: BudgetRule) -> None:
        now = sqlite_timestamp(utcnow())
        values = (budget_rule_name(rule), budget_rule_json(rule), now, now)

        def upsert(conn: sqlite3.Connection) -> None:
            with write_transaction(conn):
                conn.execute(_UPSERT_BUDGET, values)

        await self._run(upsert)

    async def delete_budget_rule(self, name: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            with write_transaction(conn):
                cursor = conn.execute("DELETE FROM policy_budgets WHERE name = ?", (name,))
            return cursor.rowcount == 1

        return await self._run(delete)
