"""Fixtures shared by the whole suite: real PostgreSQL and Redis servers, never mocks.

``postgres_dsn``: a fresh database, ``costwarden_test_<pid>_<random>``, created for this test
session and dropped (forcibly) at its end. ``redis_url`` + ``redis_key_prefix``: the Redis
server and a key prefix unique to this session; keys under the prefix are deleted at the end.

A server that cannot be reached FAILS every test that needs it, with a message saying how to
start it, unless ``COSTWARDEN_TEST_NO_SERVICES=1`` (then those tests are skipped, visibly).
Addresses: ``COSTWARDEN_TEST_PG_DSN`` (default postgresql://postgres@127.0.0.1:5432/test, the
database used only to create and drop ours) and ``COSTWARDEN_TEST_REDIS_URL``.

``ledger_backend`` / ``ledger_config`` / ``ledger_store``: a ledger store that starts empty, once
on SQLite and once on PostgreSQL for every test that uses them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis

from costwarden.config import LedgerConfig
from costwarden.ledger import Store, open_store

PG_ADMIN_DSN = os.environ.get("COSTWARDEN_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("COSTWARDEN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NO_SERVICES = os.environ.get("COSTWARDEN_TEST_NO_SERVICES") == "1"
_CONNECT_TIMEOUT_S = 5.0


def _unavailable(service: str, address: str, exc: BaseException) -> NoReturn:
    if NO_SERVICES:
        pytest.skip(f"{service} at {address} unreachable and COSTWARDEN_TEST_NO_SERVICES=1")
    pytest.fail(
        f"{service} is not reachable at {address} ({type(exc).__name__}: {exc}). "
        "Start it with scripts/services.sh, or set COSTWARDEN_TEST_NO_SERVICES=1 to skip "
        "the tests that need it.",
        pytrace=False,
    )


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


def _admin_execute(statement: str) -> None:
    """Run one statement on the admin database, from sync code even inside a running loop
    (a session fixture may first be requested by an async test)."""

    async def execute() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=_CONNECT_TIMEOUT_S)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, execute()).result()


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """DSN of a database of our own for this session (created here, dropped at the end)."""
    name = f"costwarden_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        _admin_execute(f'CREATE DATABASE "{name}"')
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        _unavailable("PostgreSQL", PG_ADMIN_DSN, exc)
    try:
        yield _with_database(PG_ADMIN_DSN, name)
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_key_prefix() -> str:
    """A key prefix no other test session uses."""
    return f"cwtest:{os.getpid()}:{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def redis_url(redis_key_prefix: str) -> Iterator[str]:
    """URL of the Redis server; keep every key under ``redis_key_prefix``."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=_CONNECT_TIMEOUT_S)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        _unavailable("Redis", REDIS_URL, exc)
    try:
        yield REDIS_URL
    finally:
        # Hash-tagged prefixes ("{prefix}:…") are covered by matching on the prefix anywhere.
        for key in client.scan_iter(match=f"*{redis_key_prefix}*", count=1000):
            client.delete(key)
        client.close()


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def ledger_config(
    ledger_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> LedgerConfig:
    """A ledger config for ``ledger_backend`` whose store starts empty."""
    dsn = request.getfixturevalue("postgres_dsn") if ledger_backend == "postgres" else None
    config = LedgerConfig(
        backend="postgres" if dsn else "sqlite",
        sqlite_path=str(tmp_path / "ledger.db"),
        postgres_dsn=dsn,
        spool_dir=str(tmp_path / "spool"),
        batch_size=100,
        flush_interval_s=0.01,
        fsync_interval_s=0.05,
    )
    if dsn is not None:  # one database per session: empty it for this test
        store = await open_store(config)  # migrates on first use
        await store.close()
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "TRUNCATE usage_records, spool_checkpoints, virtual_keys, policy_budgets, "
                "usage_cube, usage_cube_dim, rollup_dirty, alert_events, monitor_leases, "
                "price_observations, version_sightings, captured_pairs"
            )
        finally:
            await conn.close()
    return config


@pytest.fixture
async def ledger_store(ledger_config: LedgerConfig) -> AsyncIterator[Store]:
    store = await open_store(ledger_config)
    yield store
    await store.close()
