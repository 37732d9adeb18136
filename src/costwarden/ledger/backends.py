"""Pick and open the ledger backend named by the configuration."""

from __future__ import annotations

import sqlite3

import asyncpg

from costwarden.config import LedgerConfig
from costwarden.ledger.postgres import PostgresStore
from costwarden.ledger.sqlite import SqliteStore
from costwarden.ledger.store import Store

# What a store raises when its database cannot be reached (refused, cut, timed out, locked):
# callers answer 503 ledger_unavailable for these, not 500.
UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # A shutdown or crash of the server: its sessions are terminated; a pooled connection the
    # server cut mid-protocol then fails with InternalClientError on its next use (seen here).
    asyncpg.OperatorInterventionError,
    asyncpg.InternalClientError,
    sqlite3.OperationalError,
)


async def open_store(config: LedgerConfig, *, migrate: bool = True) -> Store:
    """Connect to the configured store and (by default) apply pending migrations."""
    store: Store
    if config.backend == "postgres":
        assert config.postgres_dsn is not None  # LedgerConfig validates this
        store = await PostgresStore.connect(config.postgres_dsn)
    else:
        store = SqliteStore(config.sqlite_path)
    if migrate:
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
    return store
