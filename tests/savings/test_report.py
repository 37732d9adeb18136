"""``costwarden savings``: totals by stage read back from the ledger (SQLite and PostgreSQL),
and, through the gateway, totals that match the records the requests left."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import openai
import pytest
import yaml

from costwarden.cli import main
from costwarden.ledger import Store, row_from_record
from costwarden.providers.fake_upstream import FakeUpstream
from costwarden.records import Saving
from costwarden.savings.report import savings_report
from tests.ledger.factory import BASE_TIME, make_record
from tests.savings.conftest import StartGateway, model, savings_settings


async def test_savings_round_trip_and_sum_by_stage(ledger_store: Store) -> None:
    trimmed = make_record(0, cost=Decimal("0.0002"))
    trimmed.savings = [
        Saving("trim", Decimal("0.0000375"), 250, "kept 3 of 30 passages"),
        Saving("router", Decimal("0.0011"), 0, "weak model"),
    ]
    hit = make_record(1, cost=Decimal(0))
    hit.savings = [Saving("cache_exact", Decimal("0.000123"), 140, "hit")]
    escalated = make_record(2, cost=Decimal("0.0030"))
    escalated.savings = [Saving("cascade", Decimal("-0.0004"), 0, "tier 2 of 2")]
    unpriced = make_record(3, cost=None)
    unpriced.savings = [Saving("cache_semantic", None, 60, "similarity 0.97")]
    plain = make_record(4, cost=Decimal("0.0010"))
    records = [trimmed, hit, escalated, unpriced, plain]
    await ledger_store.insert_rows([row_from_record(r) for r in records])
    assert await ledger_store.get_record(trimmed.request_id) == trimmed
    assert (await ledger_store.get_record(plain.request_id)).savings == []

    report = await savings_report(ledger_store, BASE_TIME, BASE_TIME + timedelta(minutes=1))
    kinds = {k.kind: k for k in report.kinds.values()}
    assert list(kinds) == ["cache_exact", "cache_semantic", "cascade", "router", "trim"]
    assert kinds["trim"].cost_saved == Decimal("0.0000375") and kinds["trim"].tokens_saved == 250
    assert kinds["cascade"].cost_saved == Decimal("-0.0004")
    assert kinds["cache_semantic"].unknown == 1 and kinds["cache_semantic"].cost_saved == 0
    saved = ("0.0000375", "0.0011", "0.000123", "-0.0004")
    assert report.saved == sum(Decimal(amount) for amount in saved)
    assert report.spent == Decimal("0.0042") and report.requests == 5


async def test_the_savings_command_matches_the_ledger(
    tmp_path: Path,
    upstream: FakeUpstream,
    start_gateway: StartGateway,
    capsys: pytest.CaptureFixture[str],
) -> None:
    models = [model("gpt-4o-mini", f"{upstream.base_url}/v1")]
    settings = savings_settings(tmp_path, models, {"exact_cache": {"enabled": True}})
    gw = await start_gateway(settings)
    client = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=gw.key, max_retries=0)
    ids = []
    for question in ("one", "two", "one", "one", "two", "three"):
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"question {question}"}],
            temperature=0,
        )
        ids.append(raw.headers["x-request-id"])
    records = [await gw.record(i) for i in ids]
    hits = [r for r in records if r.savings]
    assert len(hits) == 3
    config = tmp_path / "costwarden.yaml"
    config.write_text(yaml.safe_dump({"ledger": settings.ledger.model_dump(mode="json")}))

    as_json = ["savings", "--config", str(config), "--since", "1h", "--format", "json"]
    assert await asyncio.to_thread(main, as_json) == 0  # the command runs its own event loop
    shown = json.loads(capsys.readouterr().out)
    assert shown["requests"] == 6
    assert Decimal(shown["spent"]) == sum(r.cost for r in records)
    assert Decimal(shown["saved"]) == sum(r.cost_saved for r in hits)
    [exact] = shown["by_kind"]
    assert exact["kind"] == "cache_exact" and exact["requests"] == 3
    assert exact["tokens_saved"] == sum(s.tokens_saved for r in hits for s in r.savings)

    assert await asyncio.to_thread(main, as_json[:-2]) == 0
    table = capsys.readouterr().out
    assert "cache_exact" in table and "saved ÷ (spent + saved)" in table
