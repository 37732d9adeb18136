"""Batch queue fixtures: a queue on SQLite and on PostgreSQL (real servers), a settable clock,
and settings for a worker in front of the fake upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from costwarden.batch.backends import BatchQueue, queue_over
from costwarden.batch.db import Db, PostgresDb, SqliteDb
from costwarden.config import Settings, settings_from_dict

MODEL = "gpt-4o-mini"


class Clock:
    """Epoch seconds that move only when a test says so (lease expiry without sleeping)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(params=["sqlite", "postgres"])
async def batch_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Db]:
    db: Db
    if request.param == "postgres":
        db = await PostgresDb.connect(request.getfixturevalue("postgres_dsn"))
        await db.migrate()
        # One database per test session: empty the queue for this test.
        await db.execute("TRUNCATE batch_items, batch_submissions, batch_jobs")
    else:
        db = SqliteDb(tmp_path / "batch.db")
        await db.migrate()
    yield db
    await db.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(batch_db: Db, clock: Clock) -> BatchQueue:
    return queue_over(batch_db, clock)


def worker_settings(tmp_path: Path, api_base: str, **batch: Any) -> Settings:
    """Settings of a gateway/worker whose one model is served by the fake at ``api_base``."""
    return settings_from_dict(
        {
            "gateway": {"retry": {"max_attempts": 1}},
            "ledger": {
                "sqlite_path": str(tmp_path / "ledger.db"),
                "spool_dir": str(tmp_path / "spool"),
                "flush_interval_s": 0.02,
            },
            "batch": {
                "sqlite_path": str(tmp_path / "batch.db"),
                "lease_s": 5,
                "heartbeat_s": 1,
                "backoff_base_s": 0.05,
                "backoff_max_s": 0.2,
                "reconcile_after_s": 2,
                **batch,
            },
            "models": [{"name": MODEL, "endpoints": [{"id": "fake", "api_base": api_base}]}],
        }
    )


def chat_body(text: str = "Say something short", **fake: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": text}]}
    if fake:
        body["x_fake"] = fake
    return body
