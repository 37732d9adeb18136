"""Price watch on a seeded ledger (SQLite and PostgreSQL): a dated custom price that took effect
three days ago is one change with both rate cards and the exact weekly impact; a model whose
price did not move is none; the alert and the CLI's JSON carry the same figures."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from costwarden.cli import main
from costwarden.config import LedgerConfig, Settings
from costwarden.ledger import Store, open_store, row_from_record
from costwarden.monitor.price_watch import RateCard, price_change_alert, price_changes
from costwarden.records import UsageRecord
from tests.ledger.factory import make_record

NOW = datetime.now(UTC).replace(microsecond=0)
CHANGED_AT = NOW - timedelta(days=3)


def _settings_data() -> dict[str, Any]:
    endpoint = [{"id": "ep-1", "api_base": "http://127.0.0.1:9/v1"}]
    old = {"input_per_mtok": "2", "output_per_mtok": "8", "cache_read_per_mtok": "1"}
    new = {
        "effective_from": CHANGED_AT.isoformat(),
        "input_per_mtok": "3",
        "output_per_mtok": "12",
        "cache_read_per_mtok": "0.5",
    }
    steady = {"input_per_mtok": "0.15", "output_per_mtok": "0.6"}
    return {
        "models": [
            {
                "name": "house",
                "endpoints": endpoint,
                "pricing": {"mode": "custom", "custom": [old, new]},
            },
            {
                "name": "steady",
                "endpoints": endpoint,
                "pricing": {"mode": "custom", "custom": [steady]},
            },
        ]
    }


def _ledger() -> list[UsageRecord]:
    """Four ``house`` requests this week, one last month (outside the volume), two ``steady``."""
    records = [
        make_record(i, model="house", created_at=NOW - timedelta(days=i + 1)) for i in range(4)
    ]
    records.append(make_record(4, model="house", created_at=NOW - timedelta(days=30)))
    records += [make_record(i, model="steady", created_at=NOW - timedelta(hours=i)) for i in (5, 6)]
    return records


def _expected_impact(records: list[UsageRecord]) -> Decimal:
    week = [r for r in records if r.resolved_model == "house" and r.created_at > NOW - timedelta(7)]
    total = Decimal(0)
    for record in week:
        usage = record.usage
        plain = usage.input_tokens - usage.cache_read_tokens
        total += plain * Decimal(1) + usage.cache_read_tokens * Decimal("-0.5")
        total += usage.output_tokens * Decimal(4)
    return total / Decimal(1_000_000)


@pytest.fixture
async def seeded(ledger_store: Store) -> list[UsageRecord]:
    records = _ledger()
    await ledger_store.insert_rows([row_from_record(r) for r in records])
    return records


async def test_a_dated_price_is_one_change_with_its_weekly_impact(
    ledger_store: Store, seeded: list[UsageRecord]
) -> None:
    settings = Settings.model_validate(_settings_data())
    changes = await price_changes(settings, ledger_store, NOW - timedelta(days=7), NOW)
    assert [c.model for c in changes] == ["house"]
    change = changes[0]
    assert change.old == RateCard(Decimal(2), Decimal(8), Decimal(1))
    assert change.new == RateCard(Decimal(3), Decimal(12), Decimal("0.5"))
    assert change.effective_from == CHANGED_AT
    # 4 requests of 100+i input (10 cached) and 20 output: 366·1 − 40·0.5 + 80·4 per MTok.
    assert change.impact_per_week == _expected_impact(seeded) == Decimal("0.000666")
    alert = price_change_alert(change)
    assert (alert.kind, alert.severity, alert.scope) == ("price.change", "warning", "house")
    assert alert.fields["impact per week"] == "$0.000666"


async def test_a_reference_after_the_change_sees_none(
    ledger_store: Store, seeded: list[UsageRecord]
) -> None:
    settings = Settings.model_validate(_settings_data())
    assert await price_changes(settings, ledger_store, NOW - timedelta(days=2), NOW) == []


async def test_the_prices_check_command_prints_the_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = LedgerConfig(sqlite_path=str(tmp_path / "ledger.db"), spool_dir=str(tmp_path / "s"))
    store = await open_store(config)
    records = _ledger()
    await store.migrate()
    await store.insert_rows([row_from_record(r) for r in records])
    await store.close()
    path = tmp_path / "costwarden.yaml"
    path.write_text(yaml.safe_dump({**_settings_data(), "ledger": config.model_dump(mode="json")}))
    argv = ["prices", "check", "--config", str(path), "--since", "7d", "--format", "json"]
    assert await asyncio.to_thread(main, argv) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [c["model"] for c in shown["changes"]] == ["house"]
    change = shown["changes"][0]
    assert change["old"] == {"input": "2", "output": "8", "cache_read": "1"}
    assert change["new"] == {"input": "3", "output": "12", "cache_read": "0.5"}
    assert Decimal(change["impact_per_week"]) == _expected_impact(records)
    assert change["effective_from"] == CHANGED_AT.isoformat()
