"""The captured_pairs table on SQLite and PostgreSQL: insert (idempotent per request), read
newest first within retention, counts, and the retention purge (stored expiry, and a
retention shortened since capture), run by the monitor's job."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from costwarden.config import LedgerConfig, Settings
from costwarden.distill.capture import CapturePurgeJob
from costwarden.distill.config import CaptureConfig, FeatureCapture
from costwarden.distill.storage import PairStore, open_pair_store
from costwarden.ledger import Store
from costwarden.monitor.jobs import build_monitor
from tests.distill.support import count_rows, make_pair

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
async def pairs(ledger_store: Store, ledger_config: LedgerConfig) -> AsyncIterator[PairStore]:
    store = await open_pair_store(ledger_config)  # ledger_store migrated the schema
    yield store
    await store.close()


async def test_pairs_round_trip_newest_first_and_a_replay_is_skipped(pairs: PairStore) -> None:
    stored = [make_pair(i, at=NOW - timedelta(hours=i)) for i in range(3)]
    await pairs.insert(stored)
    await pairs.insert(stored[:1])  # the same request again: skipped, not an error
    assert await pairs.pairs("support", NOW) == stored
    assert await pairs.pairs("support", NOW, since=NOW - timedelta(hours=1)) == stored[:2]
    assert await pairs.pairs("support", NOW, limit=1) == stored[:1]
    assert await pairs.pairs("other", NOW) == []
    assert await pairs.counts(NOW) == {"support": 3}


async def test_expired_pairs_are_neither_read_nor_kept(
    pairs: PairStore, ledger_config: LedgerConfig
) -> None:
    old = make_pair(1, at=NOW - timedelta(days=40), retention_days=30)
    fresh = make_pair(2, at=NOW - timedelta(days=1), retention_days=30)
    await pairs.insert([old, fresh])
    assert await pairs.pairs("support", NOW) == [fresh]  # past retention: never read
    config = CaptureConfig(features={"support": FeatureCapture()})
    job = CapturePurgeJob(config, ledger_config)
    await job.run(NOW)
    assert await count_rows(ledger_config) == 1
    assert await pairs.pairs("support", NOW) == [fresh]


async def test_a_retention_shortened_since_capture_applies_at_once(
    pairs: PairStore, ledger_config: LedgerConfig
) -> None:
    week_old = make_pair(1, at=NOW - timedelta(days=7), retention_days=30)
    other = make_pair(2, "sales", at=NOW - timedelta(days=7), retention_days=30)
    await pairs.insert([week_old, other])
    shorter = CaptureConfig(features={"support": FeatureCapture(retention_days=3)})
    await CapturePurgeJob(shorter, ledger_config).run(NOW)
    assert await pairs.counts(NOW) == {"sales": 1}  # sales keeps the retention it had


async def test_the_monitor_runs_the_purge(
    pairs: PairStore, ledger_store: Store, ledger_config: LedgerConfig
) -> None:
    await pairs.insert([make_pair(1, at=NOW - timedelta(days=40))])
    monitor = {"anomaly": {"enabled": False}, "price_watch": {"enabled": False}}
    settings = Settings.model_validate({"ledger": ledger_config.model_dump(), "monitor": monitor})
    runner = build_monitor(settings, ledger_store, None, clock=NOW.timestamp)
    assert runner is not None
    await runner.stop()  # driven by hand below, not by its loop
    assert "capture_purge" in await runner.tick()
    assert await count_rows(ledger_config) == 0
