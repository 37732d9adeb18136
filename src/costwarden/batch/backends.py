"""Open the configured queue database and the three views of it the runner uses."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from costwarden.batch.db import Db, PostgresDb, SqliteDb
from costwarden.batch.jobs import JobStore
from costwarden.batch.queue import ItemQueue
from costwarden.batch.submissions import Submissions
from costwarden.config import Settings
from costwarden.errors import ConfigError


@dataclass(frozen=True, slots=True)
class BatchQueue:
    db: Db
    jobs: JobStore
    items: ItemQueue
    submissions: Submissions

    async def close(self) -> None:
        await self.db.close()


def queue_over(db: Db, clock: Callable[[], float] = time.time) -> BatchQueue:
    jobs = JobStore(db, clock)
    return BatchQueue(db, jobs, ItemQueue(db, jobs, clock), Submissions(db, clock))


async def open_queue(
    settings: Settings, clock: Callable[[], float] = time.time, *, migrate: bool = True
) -> BatchQueue:
    """The queue of ``settings.batch`` (PostgreSQL: its DSN, else the ledger's), migrated."""
    config = settings.batch
    db: Db
    if config.backend == "postgres":
        dsn = config.postgres_dsn or settings.ledger.postgres_dsn
        if not dsn:
            raise ConfigError("batch.backend=postgres needs batch.postgres_dsn or a ledger DSN")
        db = await PostgresDb.connect(dsn)
    else:
        db = SqliteDb(config.sqlite_path)
    if migrate:
        try:
            await db.migrate()
        except BaseException:
            await db.close()
            raise
    return queue_over(db, clock)
