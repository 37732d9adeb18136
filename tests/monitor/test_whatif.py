"""What-if replay on a seeded ledger (SQLite and PostgreSQL): a model map re-priced at the
catalog's price for the same tokens, a discount on one feature only, and the CLI's totals."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from genai_prices import Usage, calc_price

from costwarden.cli import main
from costwarden.config import LedgerConfig, Settings
from costwarden.ledger import Store, open_store, row_from_record
from costwarden.monitor.whatif import Scenario, ScenarioPricer, parse_model_map, what_if
from costwarden.records import Tags, UsageRecord
from tests.ledger.factory import BASE_TIME, make_record

SPAN = (BASE_TIME - timedelta(hours=1), BASE_TIME + timedelta(days=3))


def _ledger() -> list[UsageRecord]:
    """Six gpt-4o requests over two days (search and chat features) and two gpt-4o-mini ones."""
    records = []
    for i in range(6):
        feature = "search" if i % 2 else "chat"
        day = BASE_TIME + timedelta(days=i // 3, minutes=i)
        tags = Tags(feature=feature, session=None, env="prod", agent=None)
        records.append(
            make_record(i, model="gpt-4o", cost=Decimal("0.0025"), created_at=day, tags=tags)
        )
    for i in range(6, 8):
        records.append(make_record(i, model="gpt-4o-mini", cost=Decimal("0.0001")))
    return records


def _mini_price(record: UsageRecord) -> Decimal:
    usage = record.usage
    price = calc_price(
        Usage(
            input_tokens=usage.input_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            output_tokens=usage.output_tokens,
        ),
        model_ref="gpt-4o-mini",
        provider_id="openai",
    )
    return Decimal(price.total_price)


@pytest.fixture
async def seeded(ledger_store: Store) -> list[UsageRecord]:
    records = _ledger()
    await ledger_store.insert_rows([row_from_record(r) for r in records])
    return records


async def test_a_model_map_reprices_the_same_tokens(
    ledger_store: Store, seeded: list[UsageRecord]
) -> None:
    scenario = Scenario(model_map={"gpt-4o": "gpt-4o-mini"})
    rows = await what_if(ledger_store, ScenarioPricer(Settings()), scenario, ["model"], SPAN)
    by_model = {r.group["model"]: r for r in rows}
    moved = [r for r in seeded if r.resolved_model == "gpt-4o"]
    assert by_model["gpt-4o"].actual == Decimal("0.0025") * 6
    assert by_model["gpt-4o"].scenario == sum(_mini_price(r) for r in moved)
    assert by_model["gpt-4o"].scenario < by_model["gpt-4o"].actual
    unchanged = by_model["gpt-4o-mini"]
    assert unchanged.scenario == unchanged.actual == Decimal("0.0002")


async def test_a_discount_applies_only_where_asked(
    ledger_store: Store, seeded: list[UsageRecord]
) -> None:
    scenario = Scenario(where={"feature": "search"}, discount_pct=Decimal(50))
    rows = await what_if(ledger_store, ScenarioPricer(Settings()), scenario, ["feature"], SPAN)
    by_feature = {r.group["feature"]: r for r in rows}
    assert by_feature["search"].scenario == by_feature["search"].actual / 2
    assert by_feature["chat"].scenario == by_feature["chat"].actual
    assert sum(r.requests for r in rows) == len(seeded)


def test_scenarios_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="MODEL=OTHER_MODEL"):
        parse_model_map(["gpt-4o"])
    with pytest.raises(ValueError):
        Scenario(where={"colour": "red"})
    with pytest.raises(ValueError, match="discount_pct"):
        Scenario(discount_pct=Decimal(100))


async def test_the_whatif_command_totals_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = LedgerConfig(sqlite_path=str(tmp_path / "ledger.db"), spool_dir=str(tmp_path / "s"))
    store = await open_store(config)
    records = _ledger()
    await store.migrate()
    await store.insert_rows([row_from_record(r) for r in records])
    await store.close()
    path = tmp_path / "costwarden.yaml"
    path.write_text(yaml.safe_dump({"ledger": config.model_dump(mode="json")}))
    since, until = (moment.isoformat() for moment in SPAN)
    argv = ["whatif", "--config", str(path), "--map", "gpt-4o=gpt-4o-mini", "--by", "feature"]
    argv += ["--since", since, "--until", until, "--format", "json"]
    assert await asyncio.to_thread(main, argv) == 0
    shown = json.loads(capsys.readouterr().out)
    moved = [r for r in records if r.resolved_model == "gpt-4o"]
    expected = sum(_mini_price(r) for r in moved) + Decimal("0.0002")
    assert Decimal(shown["total"]["actual"]) == sum(r.cost or 0 for r in records)
    assert Decimal(shown["total"]["what_if"]) == expected
    assert shown["total"]["requests"] == len(records)
