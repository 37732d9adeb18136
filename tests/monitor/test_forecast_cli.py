"""``costwarden forecast`` end to end on a SQLite ledger: its JSON totals are the ledger's."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from costwarden.cli import main
from costwarden.config import LedgerConfig
from costwarden.ledger import open_store, row_from_record
from tests.ledger.factory import make_record

D = Decimal
COSTS = {"ml": [D("0.000000123"), D("1.5")], "web": [D("0.25")]}


def write_config(tmp_path: Path, budgets: list[dict[str, object]]) -> tuple[Path, LedgerConfig]:
    ledger = {"sqlite_path": str(tmp_path / "l.db"), "spool_dir": str(tmp_path / "spool")}
    path = tmp_path / "cw.yaml"
    path.write_text(yaml.safe_dump({"ledger": ledger, "policy": {"budgets": budgets}}))
    return path, LedgerConfig(**ledger)


async def seed(config: LedgerConfig) -> None:
    store = await open_store(config)
    try:
        await store.migrate()
        records = [
            make_record(i, cost=cost, team=team, created_at=datetime(2026, 3, 5 + i, tzinfo=UTC))
            for team, costs in COSTS.items()
            for i, cost in enumerate(costs)
        ]
        await store.insert_rows([row_from_record(r) for r in records])
    finally:
        await store.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_forecast_json_totals_match_the_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    budgets: list[dict[str, object]] = [{"name": "teams", "scope": {"team": "*"}, "limit_usd": "1"}]
    config, ledger = write_config(tmp_path, budgets)
    asyncio.run(seed(ledger))
    code, out = run(
        capsys,
        "forecast",
        "--config",
        str(config),
        "--month",
        "2026-03",
        "--by",
        "team",
        "--format",
        "json",
    )
    assert code == 0
    data = json.loads(out)
    assert data["month"] == "2026-03"
    spent = {row["team"]: D(row["spent"]) for row in data["forecasts"]}
    assert spent == {team: sum(costs, D(0)) for team, costs in COSTS.items()}
    # a past month: the projection is what was spent, exactly
    assert all(row["projected"] == row["spent"] for row in data["forecasts"])
    caps = {cap["forecast"]["team"]: cap["status"] for cap in data["budgets"]}
    assert caps == {"ml": "reached", "web": "not_this_period"}


def test_forecast_table_and_bad_group(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, ledger = write_config(tmp_path, [{"limit_usd": "100"}])
    asyncio.run(seed(ledger))
    code, out = run(capsys, "forecast", "--config", str(config), "--month", "2026-03")
    assert code == 0 and "global" in out and "$1.75" in out and "not this period" in out
    assert main(["forecast", "--config", str(config), "--by", "day"]) == 2
    assert main(["forecast", "--config", str(config), "--month", "March"]) == 2
