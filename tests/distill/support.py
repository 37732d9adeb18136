"""Helpers for the distill tests: pairs to store, and counting the table straight from SQL
(so an assertion that nothing was stored does not trust the code under test)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta

import asyncpg

from costwarden.config import LedgerConfig
from costwarden.distill.conversation import prompt_hash
from costwarden.distill.storage import CapturedPair, PairStore


def make_pair(
    index: int,
    feature: str = "support",
    *,
    at: datetime,
    retention_days: float = 30.0,
    question: str | None = None,
    answer: str = "Billing.",
) -> CapturedPair:
    messages = [
        {"role": "system", "content": "Classify the ticket: billing, shipping or account."},
        {"role": "user", "content": question or f"Ticket {index}: my invoice is wrong"},
        {"role": "assistant", "content": answer},
    ]
    return CapturedPair(
        request_id=f"cw-test-{feature}-{index}",
        feature=feature,
        captured_at=at,
        expires_at=at + timedelta(days=retention_days),
        api="chat.completions",
        model="gpt-4o",
        prompt_hash=prompt_hash(messages),
        messages=messages,
        input_tokens=40,
        output_tokens=3,
    )


async def count_rows(config: LedgerConfig) -> int:
    """Rows in ``captured_pairs``, counted with a plain connection."""
    if config.backend == "postgres":
        conn = await asyncpg.connect(config.postgres_dsn)
        try:
            return int(await conn.fetchval("SELECT COUNT(*) FROM captured_pairs"))
        finally:
            await conn.close()

    def count() -> int:
        with sqlite3.connect(config.sqlite_path) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM captured_pairs").fetchone()[0])

    return await asyncio.to_thread(count)


async def wait_for_pairs(
    store: PairStore, feature: str, count: int, now: datetime, timeout_s: float = 10.0
) -> None:
    """Until ``feature`` has ``count`` pairs stored (the writer stores after the answer)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while len(await store.pairs(feature, now)) < count:
        if loop.time() > deadline:
            raise AssertionError(f"{feature}: fewer than {count} pairs after {timeout_s} s")
        await asyncio.sleep(0.02)
