"""``PairStore`` on the PostgreSQL ledger database: a pool of its own, at most two
connections, so capture batches never hold a connection the ledger's writer needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from costwarden.distill.storage import (
    CapturedPair,
    counts_sql,
    insert_sql,
    purge_sql,
    select_sql,
)
from costwarden.ledger.rows import as_utc


def _marker(index: int) -> str:
    return f"${index}"


_INSERT = insert_sql(_marker, "::jsonb")


def _values(pair: CapturedPair) -> tuple[Any, ...]:
    return (
        pair.request_id,
        pair.feature,
        as_utc(pair.captured_at),
        as_utc(pair.expires_at),
        pair.api,
        pair.model,
        pair.prompt_hash,
        orjson.dumps(pair.messages).decode(),
        pair.input_tokens,
        pair.output_tokens,
    )


def _pair(row: Mapping[str, Any]) -> CapturedPair:
    return CapturedPair(
        request_id=row["request_id"],
        feature=row["feature"],
        captured_at=row["captured_at"],
        expires_at=row["expires_at"],
        api=row["api"],
        model=row["model"],
        prompt_hash=row["prompt_hash"],
        messages=orjson.loads(row["messages"]),  # asyncpg hands jsonb over as text
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
    )


class PostgresPairStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, dsn: str) -> PostgresPairStore:
        return cls(await asyncpg.create_pool(dsn, min_size=1, max_size=2, command_timeout=30.0))

    async def insert(self, pairs: Sequence[CapturedPair]) -> None:
        if pairs:
            await self._pool.executemany(_INSERT, [_values(p) for p in pairs])

    async def purge(self, now: datetime, cutoffs: Mapping[str, datetime]) -> int:
        params: list[Any] = [as_utc(now)]
        for feature, cutoff in cutoffs.items():
            params += [feature, as_utc(cutoff)]
        status = await self._pool.execute(purge_sql(_marker, len(cutoffs)), *params)
        return int(status.split()[-1])  # "DELETE <n>"

    async def pairs(
        self, feature: str, now: datetime, since: datetime | None = None, limit: int | None = None
    ) -> list[CapturedPair]:
        params: list[Any] = [feature, as_utc(now)]
        if since is not None:
            params.append(as_utc(since))
        if limit is not None:
            params.append(limit)
        sql = select_sql(_marker, since is not None, limit is not None)
        return [_pair(row) for row in await self._pool.fetch(sql, *params)]

    async def counts(self, now: datetime, since: datetime | None = None) -> dict[str, int]:
        params = [as_utc(now)] + ([as_utc(since)] if since else [])
        rows = await self._pool.fetch(counts_sql(_marker, since is not None), *params)
        return {row[0]: int(row[1]) for row in rows}

    async def close(self) -> None:
        await self._pool.close()
