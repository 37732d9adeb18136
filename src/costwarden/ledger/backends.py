"""Pick and open the ledger backend named by the configuration."""

from __future__ import annotations

from costwarden.config import LedgerConfig
from costwarden.ledger.postgres import PostgresStore
from costwarden.ledger.sqlite import SqliteStore
from costwarden.ledger.store import Store


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
