"""``distill candidates`` on a seeded ledger and seeded pairs (SQLite and PostgreSQL): a
templated feature on an expensive model ranks first with exact monthly figures, training cost
and the planner's break-even; a varied feature with more spend but no learnable template, and
a feature with nothing captured, rank after it; the CLI prints the same ranking as JSON."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from costwarden.cli import main
from costwarden.config import LedgerConfig, Settings
from costwarden.distill.candidates import feature_usage, find_candidates
from costwarden.distill.config import CandidatesConfig
from costwarden.distill.economics import DAYS_PER_MONTH, target_rates
from costwarden.distill.storage import PairStore, open_pair_store
from costwarden.ledger import Store, row_from_record
from costwarden.ledger.store import SpendRow
from costwarden.pricing import PriceBook
from costwarden.records import Tags, TokenUsage, UsageRecord
from tests.distill.support import make_pair
from tests.ledger.factory import make_record

NOW = datetime.now(UTC).replace(microsecond=0)
SINCE = NOW - timedelta(days=30)
# triage and chat started a day or two ago; cheap's oldest request is a second into the window.
STEPS = {
    "triage": timedelta(minutes=7),
    "chat": timedelta(minutes=5),
    "cheap": timedelta(days=30) / 50 - timedelta(seconds=1) / 50,
}
TEMPLATE = "Ticket: my {} is wrong and I was charged twice this month, please check it"
THINGS = [
    *("invoice", "receipt", "order", "parcel", "refund", "card", "account", "password"),
    *("login", "address", "plan", "seat", "licence", "discount", "coupon", "delivery"),
    *("subscription", "voucher", "statement", "quote"),
]
VARIED = [
    "Write a haiku about autumn leaves falling on a quiet pond",
    "Explain how a transformer attention head weighs the tokens",
    "What is the capital of Mongolia and how many people live there",
    "Summarise the plot of Hamlet in two short sentences please",
    "Draft a polite reminder about the unpaid March invoice",
    "Which sorting algorithm is stable and runs in n log n time",
    "Translate good morning and thank you into Portuguese",
    "List three risks of running a database without backups",
    "Give me a recipe that uses lentils, spinach and lemon",
    "Why does ice float on water while most solids sink",
    "Suggest a name for a bakery that only sells sourdough",
    "How do I undo the last git commit but keep my changes",
]


def _records() -> list[UsageRecord]:
    """Per feature: (requests, model, cost per request) over the last 30 days."""
    plan = [("triage", 300, "gpt-4o", "0.003"), ("chat", 200, "gpt-4o", "0.006")]
    plan.append(("cheap", 50, "gpt-4o-mini", "0.0001"))
    records = []
    for feature, count, model, cost in plan:
        step = STEPS[feature]
        for i in range(count):
            records.append(
                make_record(
                    len(records),
                    model=model,
                    cost=Decimal(cost),
                    created_at=NOW - step * (i + 1),
                    tags=Tags(feature=feature),
                    usage=TokenUsage(input_tokens=1000, output_tokens=50),
                )
            )
    untagged = make_record(len(records), created_at=NOW - timedelta(hours=1), tags=Tags())
    return [*records, untagged]


def _days(feature: str, count: int) -> Decimal:
    """The span a feature's traffic is a rate over: from its first day (or the window's start)."""
    first = NOW - STEPS[feature] * count
    start = max(SINCE, datetime.combine(first.date(), time(), UTC))
    return Decimal((NOW - start).total_seconds()) / 86400


async def _seed(store: Store, pairs: PairStore) -> None:
    await store.insert_rows([row_from_record(r) for r in _records()])
    templated = [
        make_pair(i, "triage", at=NOW - timedelta(hours=i + 1), question=TEMPLATE.format(thing))
        for i, thing in enumerate(THINGS)
    ]
    varied = [
        make_pair(i, "chat", at=NOW - timedelta(hours=i + 1), question=text)
        for i, text in enumerate(VARIED)
    ]
    await pairs.insert([*templated, *varied])


@pytest.fixture
async def pairs(ledger_store: Store, ledger_config: LedgerConfig) -> PairStore:
    store = await open_pair_store(ledger_config)
    await _seed(ledger_store, store)
    yield store  # type: ignore[misc]
    await store.close()


async def test_the_templated_feature_ranks_first_with_exact_figures(
    ledger_store: Store, pairs: PairStore
) -> None:
    settings = Settings()
    rates = target_rates(settings.distill.target, settings, PriceBook(settings), NOW)
    config = CandidatesConfig()
    found = await find_candidates(ledger_store, pairs, rates, config, (SINCE, NOW))
    assert [c.usage.feature for c in found] == ["triage", "chat", "cheap"]
    assert [c.ready for c in found] == [True, False, False]
    triage, chat, cheap = found
    days = _days("triage", 300)
    assert triage.usage.days == _days("triage", 300) < 3
    assert cheap.usage.days == _days("cheap", 50)
    assert triage.usage.requests == 300 and triage.usage.model == "gpt-4o"
    assert triage.monthly_current == Decimal("0.900") * DAYS_PER_MONTH / days
    # 300 × (1000 × $0.30 + 50 × $1.20) per million tokens
    assert triage.monthly_target == Decimal("0.108") * DAYS_PER_MONTH / days
    assert triage.captured.pairs == triage.captured.unique_prompts == 20
    # 20 examples of 40 + 3 tokens, 3 epochs at $3.00 per million training tokens
    assert triage.training_examples == 20 and triage.training_tokens == 860
    assert triage.training_cost == Decimal(860 * 3 * 3) / 1_000_000
    # The planner's break-even: training ÷ saving per day, the saving being the table's.
    assert triage.break_even.days is not None
    months = triage.break_even.days / DAYS_PER_MONTH
    assert abs(months - triage.training_cost / triage.monthly_saving) < Decimal("1e-20")
    # $0.003 recorded per query vs 1000 × $0.30 + 50 × $1.20 per million: 3 queries pay back
    assert triage.break_even.current_per_query == Decimal("0.003")
    assert triage.break_even.tuned_per_query == Decimal("0.00036")
    assert triage.break_even.queries == 3
    repetition = triage.captured.repetition
    assert repetition is not None and repetition.exact_repeat_share == 0.0
    assert repetition.near_duplicate_share == 1.0
    assert chat.monthly_saving > triage.monthly_saving  # more spend, but not learnable
    assert chat.captured.repetition is not None
    assert chat.captured.repetition.near_duplicate_share < config.min_repetitiveness
    assert chat.training_examples == len(VARIED)
    assert cheap.captured.pairs == 0 and cheap.captured.repetition is None
    # Nothing captured: priced at the default example count and the ledger's request size.
    assert cheap.training_tokens == config.default_training_examples * 1050
    assert cheap.monthly_saving < 0 and cheap.break_even.days is None


async def test_the_cli_prints_the_ranking_as_json(
    ledger_store: Store,
    pairs: PairStore,
    ledger_config: LedgerConfig,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "costwarden.yaml"
    path.write_text(yaml.safe_dump({"ledger": ledger_config.model_dump(mode="json")}))
    argv = ["distill", "candidates", "--config", str(path), "--since", "30d", "--format", "json"]
    assert await asyncio.to_thread(main, argv) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [c["feature"] for c in shown["candidates"]] == ["triage", "chat", "cheap"]
    first = shown["candidates"][0]
    assert first["ready"] is True and first["model"] == "gpt-4o"
    assert first["repetitiveness"]["near_duplicate_share"] == 1.0
    assert Decimal(first["training_cost"]) == Decimal("0.00774")
    assert shown["target"]["input_per_mtok"] == "0.3"
    argv[-1] = "table"
    assert await asyncio.to_thread(main, argv) == 0
    table = capsys.readouterr().out
    assert "Distillation candidates" in table and table.index("triage") < table.index("cheap")


def test_a_feature_is_a_rate_over_its_own_days_in_the_window() -> None:
    since, until = datetime(2026, 3, 1, 12, tzinfo=UTC), datetime(2026, 3, 31, 12, tzinfo=UTC)

    def row(feature: str, model: str, day: str, requests: int, cost: str) -> SpendRow:
        group = {"feature": feature, "model": model, "day": day}
        return SpendRow(group, requests, requests * 100, requests * 10, 0, Decimal(cost), 0)

    rows = [
        row("old", "gpt-4o", "2026-03-01", 5, "0.5"),  # its first day began before the window
        row("old", "gpt-4o-mini", "2026-03-20", 50, "0.2"),
        row("new", "gpt-4o", "2026-03-29", 10, "1"),
        row("new", "gpt-4o", "2026-03-30", 10, "1"),
        row(None, "gpt-4o", "2026-03-30", 99, "9"),  # type: ignore[arg-type]
    ]
    old, new = feature_usage(rows, (since, until))
    assert (old.feature, old.days, old.requests, old.cost) == ("old", 30, 55, Decimal("0.7"))
    assert old.model == "gpt-4o"  # the most spend, not the most requests
    assert (new.feature, new.days, new.requests) == ("new", Decimal("2.5"), 20)
    assert (new.input_tokens, new.output_tokens) == (2000, 200)
