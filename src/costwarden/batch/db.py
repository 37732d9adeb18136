"""The two database drivers under the queue: one small async interface, two dialects.

Queue SQL is written once with ``?`` markers; the PostgreSQL driver numbers them (``$1``…).
SQLite: one connection on one thread (the event loop never blocks on disk), WAL, and an
asyncio lock so a transaction's statements are never interleaved with another coroutine's.
Write transactions start with ``BEGIN IMMEDIATE``: the write lock is taken up front, so two
processes claiming at once queue on ``busy_timeout`` instead of one failing on a lock upgrade.
``synchronous=NORMAL``: in WAL mode a commit survives a killed process (the case the queue is
built for); a power cut may lose the last commits, which only re-runs those items.

PostgreSQL: an asyncpg pool; claims use ``FOR UPDATE SKIP LOCKED`` so many workers on many
machines take disjoint items without waiting on each other.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg

from costwarden.ledger.sql import split_sqlite_script

T = TypeVar("T")
Row = dict[str, Any]
_MIGRATION = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_MIGRATION_LOCK_ID = 0x63772D6261746368  # "cw-batch": the ledger's lock id is another
_MARKER = re.compile(r"\?")
_APPLIED = "SELECT version FROM batch_schema_migrations"


class Tx(Protocol):
    async def fetch(self, sql: str, *params: Any) -> list[Row]: ...

    async def execute(self, sql: str, *params: Any) -> int:
        """Run one statement; return the rows it changed."""

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


class Db(Tx, Protocol):
    dialect: str
    skip_locked: str  # appended to a claim's inner SELECT

    def money(self, value: Decimal | None) -> Any:
        """A cost as this driver binds it."""

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """``async with db.transaction() as tx:`` — a write transaction."""

    async def migrate(self) -> None: ...

    async def close(self) -> None: ...


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) of ``batch/migrations/<dialect>/NNNN_name.sql``, in order."""
    folder = resources.files("costwarden.batch") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    return sorted(found)


class _SqliteTx:
    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def fetch(self, sql: str, *params: Any) -> list[Row]:
        return await self._db.call(lambda c: [dict(r) for r in c.execute(sql, params)])

    async def execute(self, sql: str, *params: Any) -> int:
        return await self._db.call(lambda c: c.execute(sql, params).rowcount)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._db.call(lambda c: c.executemany(sql, rows))


class SqliteDb:
    dialect = "sqlite"
    skip_locked = ""  # BEGIN IMMEDIATE already makes a claim the only writer

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        self._path = Path(path)
        self._busy_ms = int(busy_timeout_s * 1000)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cw-batch-db")
        self._conn: sqlite3.Connection | None = None  # touched only on the executor thread
        self._lock = asyncio.Lock()
        self._tx = _SqliteTx(self)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._conn = conn
        return self._conn

    async def call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: work(self._connection()))

    def money(self, value: Decimal | None) -> Any:
        return None if value is None else str(value)

    async def fetch(self, sql: str, *params: Any) -> list[Row]:
        async with self._lock:
            return await self._tx.fetch(sql, *params)

    async def execute(self, sql: str, *params: Any) -> int:
        async with self._lock:
            return await self._tx.execute(sql, *params)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self._lock:
            await self.call(lambda c: c.execute("BEGIN IMMEDIATE"))
            try:
                yield self._tx
            except BaseException:
                await asyncio.shield(self.call(lambda c: c.execute("ROLLBACK")))
                raise
            await self.call(lambda c: c.execute("COMMIT"))

    async def migrate(self) -> None:
        async with self.transaction() as tx:
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS batch_schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
            )
            done = {r["version"] for r in await tx.fetch(_APPLIED)}
            for version, name, sql in migrations(self.dialect):
                if version in done:
                    continue
                for statement in split_sqlite_script(sql):
                    await tx.execute(statement)
                await tx.execute(
                    "INSERT INTO batch_schema_migrations (version, name) VALUES (?, ?)",
                    version,
                    name,
                )

    async def close(self) -> None:
        def shut(_conn: sqlite3.Connection) -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        if self._conn is not None:
            await self.call(shut)
        self._executor.shutdown(wait=True)


def numbered(sql: str) -> str:
    """``?`` markers as PostgreSQL's ``$1``, ``$2``… (queue SQL has no literal ``?``)."""
    counter = iter(range(1, 10_000))
    return _MARKER.sub(lambda _m: f"${next(counter)}", sql)


class _PgTx:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *params: Any) -> list[Row]:
        return [dict(r) for r in await self._conn.fetch(numbered(sql), *params)]

    async def execute(self, sql: str, *params: Any) -> int:
        status: str = await self._conn.execute(numbered(sql), *params)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(numbered(sql), rows)


class PostgresDb:
    dialect = "postgres"
    skip_locked = " FOR UPDATE OF i SKIP LOCKED"  # the item rows only, never the job

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, dsn: str) -> PostgresDb:
        return cls(await asyncpg.create_pool(dsn, min_size=1, max_size=8))

    def money(self, value: Decimal | None) -> Any:
        return value

    async def fetch(self, sql: str, *params: Any) -> list[Row]:
        async with self._pool.acquire() as conn:
            return await _PgTx(conn).fetch(sql, *params)

    async def execute(self, sql: str, *params: Any) -> int:
        async with self._pool.acquire() as conn:
            return await _PgTx(conn).execute(sql, *params)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield _PgTx(conn)

    async def migrate(self) -> None:
        async with self.transaction() as tx:
            await tx.execute("SELECT pg_advisory_xact_lock(?)", _MIGRATION_LOCK_ID)
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS batch_schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
            )
            done = {r["version"] for r in await tx.fetch(_APPLIED)}
            for version, name, sql in migrations(self.dialect):
                if version not in done:
                    await tx.execute(sql)  # no parameters: asyncpg runs the whole script
                    await tx.execute(
                        "INSERT INTO batch_schema_migrations (version, name) VALUES (?, ?)",
                        version,
                        name,
                    )

    async def close(self) -> None:
        await self._pool.close()
