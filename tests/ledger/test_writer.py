"""The ledger writer: append → spool → store, crash replay, outages, and kill -9."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import orjson
import pytest

from costwarden.config import LedgerConfig
from costwarden.ledger import Checkpoint, Ledger, LedgerClosedError, Store, WriterTuning, open_store
from costwarden.ledger.rows import encode_record, row_from_record
from costwarden.ledger.sqlite import SqliteStore
from costwarden.records import UsageRecord
from tests.conftest import PG_ADMIN_DSN
from tests.ledger.factory import make_record

REPO_ROOT = Path(__file__).resolve().parents[2]
DEAD_SEGMENT = "seg-4242-1700000000000000000-deadbeef-000003.spool"
FAST_RETRY = WriterTuning(retry_min_s=0.01, retry_max_s=0.05)


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition``; the deadline only guards against a hang, it asserts no timing."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def write_dead_segment(config: LedgerConfig, content: bytes) -> Path:
    """A segment as a dead process leaves it: unlocked, maybe with a torn tail."""
    spool_dir = Path(config.spool_dir)
    spool_dir.mkdir(parents=True, exist_ok=True)
    path = spool_dir / DEAD_SEGMENT
    path.write_bytes(content)
    return path


def spool_files(config: LedgerConfig) -> list[str]:
    return sorted(path.name for path in Path(config.spool_dir).iterdir())


def spool_lines(records: list[UsageRecord]) -> bytes:
    return b"".join(encode_record(r) for r in records)


def ids(records: list[UsageRecord]) -> set[str]:
    return {r.request_id for r in records}


async def test_appended_records_reach_the_store(ledger_config: LedgerConfig) -> None:
    ledger = await Ledger.open(ledger_config)
    records = [make_record(i) for i in range(250)]  # several batches of batch_size=100
    for record in records:
        ledger.append(record)
    await ledger.flush()
    assert await ledger.store.all_request_ids() == ids(records)
    assert await ledger.store.get_record(records[7].request_id) == records[7]
    assert ledger.stats.appended == 250 and ledger.stats.bad_lines == 0
    await ledger.close()


async def test_close_drains_and_removes_the_spool(ledger_config: LedgerConfig) -> None:
    ledger = await Ledger.open(ledger_config)
    records = [make_record(i) for i in range(10)]
    for record in records:
        ledger.append(record)
    await ledger.close()
    await ledger.close()  # idempotent
    assert spool_files(ledger_config) == []
    with pytest.raises(LedgerClosedError):
        ledger.append(make_record(11))
    store = await open_store(ledger_config)
    try:
        assert await store.all_request_ids() == ids(records)
        assert await store.count_records() == 10
    finally:
        await store.close()


async def test_replay_skips_a_torn_last_line(ledger_config: LedgerConfig) -> None:
    records = [make_record(i) for i in range(3)]
    torn = encode_record(make_record(3))[:-25]
    segment = write_dead_segment(ledger_config, spool_lines(records) + torn)
    ledger = await Ledger.open(ledger_config)
    try:
        assert await ledger.store.all_request_ids() == ids(records)
        assert (ledger.stats.segments_adopted, ledger.stats.bad_lines) == (1, 1)
        assert not segment.exists()
    finally:
        await ledger.close()


async def test_replay_skips_a_corrupt_line_and_keeps_the_rest(ledger_config: LedgerConfig) -> None:
    before, after = [make_record(0)], [make_record(1), make_record(2)]
    content = spool_lines(before) + b"\x00\x00garbage\n" + b"[1, 2]\n" + spool_lines(after)
    write_dead_segment(ledger_config, content)
    ledger = await Ledger.open(ledger_config)
    try:
        assert await ledger.store.all_request_ids() == ids(before + after)
        assert ledger.stats.bad_lines == 2
    finally:
        await ledger.close()


async def test_replay_resumes_from_the_checkpoint(ledger_config: LedgerConfig) -> None:
    records = [make_record(i) for i in range(5)]
    write_dead_segment(ledger_config, spool_lines(records))
    copied = len(spool_lines(records[:2]))  # as if the dead process had stored two records
    store = await open_store(ledger_config)
    await store.insert_rows([], Checkpoint(DEAD_SEGMENT, copied))
    await store.close()

    ledger = await Ledger.open(ledger_config)
    try:
        # Records before the checkpoint are not re-read: only the three after it are stored.
        assert await ledger.store.all_request_ids() == ids(records[2:])
        assert await ledger.store.get_checkpoint(DEAD_SEGMENT) is None  # segment done
    finally:
        await ledger.close()


async def test_replaying_stored_records_is_idempotent(ledger_config: LedgerConfig) -> None:
    records = [make_record(i) for i in range(5)]
    store = await open_store(ledger_config)
    await store.insert_rows([row_from_record(r) for r in records])
    await store.close()
    segment = write_dead_segment(ledger_config, spool_lines(records))  # no checkpoint

    ledger = await Ledger.open(ledger_config)
    try:
        assert await ledger.store.count_records() == 5
        assert ledger.stats.lines_copied == 5 and not segment.exists()
    finally:
        await ledger.close()


async def test_a_live_ledgers_spool_is_not_taken_over(ledger_config: LedgerConfig) -> None:
    first = await Ledger.open(ledger_config)
    records = [make_record(i) for i in range(20)]
    for record in records:
        first.append(record)
    second = await Ledger.open(ledger_config)  # same spool directory, same store
    try:
        assert second.stats.segments_adopted == 0  # `first` holds its segment's lock
        await first.flush()
        assert await second.store.all_request_ids() == ids(records)
    finally:
        await first.close()
        await second.close()


@asynccontextmanager
async def store_outage(config: LedgerConfig) -> AsyncIterator[None]:
    """Make the store refuse writes: SQLite locked by another writer; PostgreSQL refusing
    connections to the database, with the existing ones terminated."""
    if config.backend == "sqlite":
        blocker = sqlite3.connect(config.sqlite_path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        return
    assert config.postgres_dsn is not None
    database = urlsplit(config.postgres_dsn).path.lstrip("/")
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await admin.close()


async def open_outage_store(config: LedgerConfig) -> Store:
    if config.backend == "sqlite":
        store = SqliteStore(config.sqlite_path, busy_timeout_s=0.05)  # fail fast when locked
        await store.migrate()
        return store
    return await open_store(config)


async def test_store_outage_loses_nothing(ledger_config: LedgerConfig) -> None:
    store = await open_outage_store(ledger_config)
    ledger = await Ledger.open(ledger_config, store=store, tuning=FAST_RETRY)
    records = [make_record(i) for i in range(50)]
    try:
        async with store_outage(ledger_config):
            for record in records:
                ledger.append(record)
            flushing = asyncio.create_task(ledger.flush())
            await wait_until(lambda: ledger.stats.store_failures >= 2, "copy attempts failed")
            assert not flushing.done()  # nothing can be stored while the store is down
        await flushing
        assert await store.all_request_ids() == ids(records)
    finally:
        await ledger.close()
        await store.close()


async def test_sigkill_mid_run_loses_no_accepted_record(ledger_config: LedgerConfig) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.ledger.kill_writer",
        orjson.dumps(ledger_config.model_dump(mode="json")).decode(),
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
    )
    assert child.stdout is not None
    accepted: list[str] = []
    while len(accepted) < 1500:
        line = await child.stdout.readline()
        if not line.endswith(b"\n"):
            break
        accepted.append(line.decode().strip())
    child.send_signal(signal.SIGKILL)
    rest = await child.stdout.read()
    await child.wait()
    assert child.returncode == -signal.SIGKILL
    assert len(accepted) == 1500, "the child died before it was killed"
    accepted += [line.decode() for line in rest.split(b"\n")[:-1]]  # complete lines only

    ledger = await Ledger.open(ledger_config)
    try:
        stored = await ledger.store.all_request_ids()
        missing = set(accepted) - stored
        assert not missing, f"{len(missing)} accepted records were lost"
        assert ledger.stats.segments_adopted >= 1  # the dead child's spool was replayed
    finally:
        await ledger.close()
    assert spool_files(ledger_config) == []
