"""RAG vs long context vs fine-tuning, and the fine-tuning break-even, by hand."""

from __future__ import annotations

from decimal import Decimal

import pytest

from costwarden.planner.strategy import (
    StrategyInputs,
    compare_strategies,
    explain_strategies,
    fine_tune_break_even,
)

BASE = {
    "queries_per_day": 1000,
    "model": {"name": "big", "input_per_mtok": "2.5", "output_per_mtok": "10"},
    "tuned": {"name": "small-ft", "input_per_mtok": "0.3", "output_per_mtok": "1.2"},
    "training_usd": "500",
    "context_tokens": 50_000,
}


def test_three_strategies_by_hand() -> None:
    result = compare_strategies(StrategyInputs.model_validate(BASE))
    costs = {s.name: s for s in result.strategies}
    # Long context: (200 + 50,000) × $2.5/1M + 300 × $10/1M = 0.1255 + 0.003 = $0.1285.
    assert costs["long-context"].per_query == Decimal("0.1285")
    # RAG: (200 + 4000) × 2.5e-6 + 300 × 1e-5 + 200 × 0.02e-6 (question embedding) = 0.013504;
    # indexing 1M corpus tokens × $0.02/1M = $0.02 up front.
    assert costs["rag"].per_query == Decimal("0.013504")
    assert costs["rag"].upfront == Decimal("0.02")
    # Fine-tune: 200 × 0.3e-6 + 300 × 1.2e-6 = $0.00042 per query, $500 up front.
    assert costs["fine-tune"].per_query == Decimal("0.00042")
    # Horizon 365 days: 500 + 365 × 0.42 = $653.30.
    assert result.totals["fine-tune"] == Decimal("653.30")
    crossings = {(c.cheaper_later, c.cheaper_first): c for c in result.crossovers}
    # vs long context: 500 ÷ (128.5 − 0.42) = 3.90 days → day 4.
    lc = crossings[("fine-tune", "long-context")]
    assert lc.day == 4 and lc.analytic_day == pytest.approx(Decimal("3.9038"), abs=Decimal("1e-4"))
    # vs RAG: (500 − 0.02) ÷ (13.504 − 0.42) = 38.21 days → day 39.
    rag = crossings[("fine-tune", "rag")]
    assert rag.day == 39 and rag.analytic_day == pytest.approx(
        Decimal("38.213"), abs=Decimal("1e-3")
    )
    assert ("long-context", "rag") not in crossings  # RAG is cheaper from day 1 and stays so
    assert "fine-tune is cheapest at $653.30" in explain_strategies(result).verdict


def test_retraining_and_cache_reads() -> None:
    inputs = StrategyInputs.model_validate(
        {
            **BASE,
            "retrain_every_days": 30,
            "horizon_days": 60,
            "cached_share": "0.5",
            "cache_read_per_mtok": "0.25",
        }
    )
    result = compare_strategies(inputs)
    fine_tune = next(s for s in result.strategies if s.name == "fine-tune")
    # Retrained at the end of day 30 and of day 60: 500 + 2 × 500 + 60 × 0.42.
    assert fine_tune.total(60, inputs.queries_per_day) == Decimal("1525.20")
    assert fine_tune.total(29, inputs.queries_per_day) == Decimal("512.18")
    # Half the 50k context at the cache price: 25,200 × 2.5e-6 + 25,000 × 0.25e-6 + 0.003
    # = 0.063 + 0.00625 + 0.003.
    long_context = next(s for s in result.strategies if s.name == "long-context")
    assert long_context.per_query == Decimal("0.07225")


def test_fine_tune_break_even_by_hand() -> None:
    prices = {
        "current_input_per_mtok": Decimal("2.5"),
        "current_output_per_mtok": Decimal(10),
        "tuned_input_per_mtok": Decimal("0.3"),
        "tuned_output_per_mtok": Decimal("1.2"),
        "input_tokens": 1000,
        "output_tokens": 200,
    }
    # current 1000·2.5e-6 + 200·1e-5 = 0.0045; tuned 0.0003 + 0.00024 = 0.00054; saving 0.00396.
    plain = fine_tune_break_even(training_cost_usd=Decimal(100), **prices)
    assert plain.saving_per_query == Decimal("0.00396")
    assert plain.queries == 25_253  # ceil(100 ÷ 0.00396 = 25,252.5)
    assert plain.days is None
    daily = fine_tune_break_even(training_cost_usd=Decimal(100), queries_per_day=1000, **prices)
    assert daily.days == pytest.approx(Decimal("25.2525"), abs=Decimal("1e-4"))
    # With $1/day hosting: 100 ÷ (1000 × 0.00396 − 1) = 33.78 days → 33,784 queries.
    hosted = fine_tune_break_even(
        training_cost_usd=Decimal(100),
        queries_per_day=1000,
        tuned_fixed_usd_per_day=Decimal(1),
        **prices,
    )
    assert hosted.queries == 33_784
    # A shorter prompt after tuning (no few-shot examples) saves more: 100 in instead of 1000.
    short = fine_tune_break_even(training_cost_usd=Decimal(100), tuned_input_tokens=100, **prices)
    assert short.tuned_per_query == Decimal("0.00027")
    never = fine_tune_break_even(
        training_cost_usd=Decimal(100), **{**prices, "tuned_output_per_mtok": Decimal(100)}
    )
    assert never.queries is None and never.saving_per_query < 0
    with pytest.raises(ValueError, match="queries_per_day"):
        fine_tune_break_even(
            training_cost_usd=Decimal(1), tuned_fixed_usd_per_day=Decimal(1), **prices
        )
