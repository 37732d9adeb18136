"""``PairStore`` on the SQLite ledger file: one connection on one worker thread, as the
ledger's own store does, so the event loop never waits on disk."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from costwarden.distill.storage import (
    CapturedPair,
    counts_sql,
    insert_sql,
    purge_sql,
    select_sql,
)
from costwarden.ledger.sqlite_rows import sqlite_timestamp

T = TypeVar("T")


def _marker(_index: int) -> str:
    return "?"


_INSERT = insert_sql(_marker)


def _values(pair: CapturedPair) -> tuple[Any, ...]:
    return (
        pair.request_id,
        pair.feature,
        sqlite_timestamp(pair.captured_at),
        sqlite_timestamp(pair.expires_at),
        pair.api,
        pair.model,
        pair.prompt_hash,
        orjson.dumps(pair.messages).decode(),
        pair.input_tokens,
        pair.output_tokens,
    )


def _pair(row: Sequence[Any]) -> CapturedPair:
    return CapturedPair(
        request_id=row[0],
        feature=row[1],
        captured_at=datetime.fromisoformat(row[2]),
        expires_at=datetime.fromisoformat(row[3]),
        api=row[4],
        model=row[5],
        prompt_hash=row[6],
        messages=orjson.loads(row[7]),
        input_tokens=int(row[8]),
        output_tokens=int(row[9]),
    )


class SqlitePairStore:
    def __init__(self, path: str | Path, *, busy_timeout_s: float = 5.0) -> None:
        self._path = Path(path)
        self._busy_timeout_ms = int(busy_timeout_s * 1000)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cw-capture")
        self._conn: sqlite3.Connection | None = None  # touched only on the worker thread

    def _on_thread(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            conn.execute("PRAGMA journal_mode = WAL")
            self._conn = conn
        return work(self._conn)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._on_thread, work)

    async def _write(self, sql: str, params: Sequence[Any], many: bool = False) -> int:
        def write(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")  # the write lock up front, as the ledger takes it
            try:
                cursor = conn.executemany(sql, params) if many else conn.execute(sql, params)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return cursor.rowcount

        return await self._run(write)

    async def insert(self, pairs: Sequence[CapturedPair]) -> None:
        if pairs:
            await self._write(_INSERT, [_values(p) for p in pairs], many=True)

    async def purge(self, now: datetime, cutoffs: Mapping[str, datetime]) -> int:
        params: list[Any] = [sqlite_timestamp(now)]
        for feature, cutoff in cutoffs.items():
            params += [feature, sqlite_timestamp(cutoff)]
        return await self._write(purge_sql(_marker, len(cutoffs)), params)

    async def pairs(
        self, feature: str, now: datetime, since: datetime | None = None, limit: int | None = None
    ) -> list[CapturedPair]:
        params: list[Any] = [feature, sqlite_timestamp(now)]
        if since is not None:
            params.append(sqlite_timestamp(since))
        if limit is not None:
            params.append(limit)
        sql = select_sql(_marker, since is not None, limit is not None)
        rows = await self._run(lambda conn: conn.execute(sql, params).fetchall())
        return [_pair(row) for row in rows]

    async def counts(self, now: datetime, since: datetime | None = None) -> dict[str, int]:
        params = [sqlite_timestamp(now)] + ([sqlite_timestamp(since)] if since else [])
        sql = counts_sql(_marker, since is not None)
        rows = await self._run(lambda conn: conn.execute(sql, params).fetchall())
        return {row[0]: int(row[1]) for row in rows}

    async def close(self) -> None:
        def close_connection(_conn: sqlite3.Connection) -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        if self._conn is not None:
            await self._run(close_connection)
        self._executor.shutdown(wait=True)
