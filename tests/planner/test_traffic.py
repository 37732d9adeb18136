"""Ledger traffic as planner input, on seeded ledgers (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from costwarden.cli import main
from costwarden.config import LedgerConfig
from costwarden.ledger import Store, open_store
from costwarden.ledger.rows import row_from_record
from costwarden.planner.traffic import ledger_traffic
from costwarden.records import Status
from tests.ledger.factory import BASE_TIME, make_record

HOUR = timedelta(hours=1)


async def seed(store: Store) -> None:
    """Three OK requests at 12:xx, none at 13:xx, two at 14:xx (one failed)."""
    at = [
        BASE_TIME,
        BASE_TIME + timedelta(minutes=5),
        BASE_TIME + timedelta(minutes=50),
        BASE_TIME + 2 * HOUR,
        BASE_TIME + 2 * HOUR + timedelta(minutes=1),
    ]
    records = [make_record(i, created_at=moment) for i, moment in enumerate(at)]
    records[-1] = make_record(4, created_at=at[-1], status=Status.UPSTREAM_ERROR)
    await store.insert_rows([row_from_record(r) for r in records])


async def test_hourly_rates_and_token_lengths(ledger_store: Store) -> None:
    await seed(ledger_store)
    traffic = await ledger_traffic(ledger_store, BASE_TIME, BASE_TIME + 3 * HOUR)
    assert [count for _, count in traffic.hourly] == [3, 0, 2]
    assert traffic.mean_rps == pytest.approx(5 / (3 * 3600))
    # make_record: input 100 + index, output 20; the failed request is left out.
    assert sorted(traffic.input_tokens) == [100, 101, 102, 103]
    assert traffic.mean_tokens() == (102, 20)  # round(406/4 = 101.5) → 102 (half to even)
    profile = traffic.day_profile()
    assert profile[12] == pytest.approx(3 / 3600) and profile[13] == 0
    assert traffic.overrides("selfhost")["output_tokens"] == 20
    assert traffic.overrides("autoscale")["hourly_rps"] == profile
    assert traffic.overrides("strategy") == {}
    filtered = await ledger_traffic(
        ledger_store, BASE_TIME, BASE_TIME + 3 * HOUR, {"model": "gpt-4o"}
    )
    assert filtered.requests == 0 and filtered.output_tokens == ()
    with pytest.raises(ValueError, match="no successful requests"):
        filtered.overrides("padding")


async def test_cli_from_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = LedgerConfig(sqlite_path=str(tmp_path / "ledger.db"), spool_dir=str(tmp_path / "s"))
    store = await open_store(ledger)
    await store.migrate()
    await seed(store)
    await store.close()
    config = tmp_path / "costwarden.yaml"
    config.write_text(
        yaml.safe_dump(
            {"ledger": {"sqlite_path": ledger.sqlite_path, "spool_dir": ledger.spool_dir}}
        )
    )
    argv = [
        "plan",
        "padding",
        "--config",
        str(config),
        "--from-ledger",
        "--since",
        BASE_TIME.isoformat(),
        "--until",
        (BASE_TIME + 3 * HOUR).isoformat(),
        "--batch-size",
        "2",
        "--simulate-requests",
        "0",
    ]
    # main() runs its own event loop: call it from a worker thread.
    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    assert "5 requests in 3 hours" in out
    # Outputs all 20; prompts 100..103 with w = 0.3: waste comes from the prompts only.
    assert "4 observed lengths" in out
