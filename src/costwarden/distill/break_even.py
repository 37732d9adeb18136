"""When fine-tuning pays for itself: the strategy planner's ``fine_tune_break_even`` fed with
a feature's recorded traffic, so ``costwarden plan strategy`` and ``distill`` can never
disagree on the arithmetic.

The planner prices a query from per-million rates. The feature's current rate is its
*recorded* cost per token (cost ÷ tokens, both from the ledger: cache reads, discounts and a
mix of models included), so the planner's saving per query is exactly the saving the
candidates table shows. The target's per-request price (self-hosted, per request) and its
fixed monthly cost go in as the planner's fixed cost per day.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from costwarden.distill.economics import DAYS_PER_MONTH, FeatureUsage, TargetRates
from costwarden.planner.strategy import BreakEven, fine_tune_break_even

_MILLION = Decimal(1_000_000)
_DAYS_SHOWN = Decimal(60)  # below this a break-even reads in days, above in months


def fine_tune_payback(
    usage: FeatureUsage, rates: TargetRates, training_cost: Decimal, days: Decimal
) -> BreakEven:
    """The planner's break-even of ``usage`` (recorded over ``days`` days) moved to ``rates``
    after paying ``training_cost``."""
    requests, input_tokens, output_tokens = usage.requests, usage.input_tokens, usage.output_tokens
    total = input_tokens + output_tokens
    recorded = usage.cost / total * _MILLION if total else Decimal(0)
    per_day = Decimal(requests) / days
    return fine_tune_break_even(
        training_cost_usd=training_cost,
        current_input_per_mtok=recorded,
        current_output_per_mtok=recorded,
        tuned_input_per_mtok=rates.input * _MILLION,
        tuned_output_per_mtok=rates.output * _MILLION,
        input_tokens=Decimal(input_tokens) / requests,
        output_tokens=Decimal(output_tokens) / requests,
        queries_per_day=per_day,
        tuned_fixed_usd_per_day=rates.monthly_fixed / DAYS_PER_MONTH + rates.per_request * per_day,
    )


def describe(result: BreakEven) -> str:
    """``12 days`` / ``3.4 months`` / ``never``, for tables and summaries."""
    if result.days is None:
        return "never"
    if result.days < 1:
        return "< 1 day"
    if result.days < _DAYS_SHOWN:
        return f"{result.days:.0f} days"
    return f"{result.days / DAYS_PER_MONTH:.1f} months"


def to_dict(result: BreakEven) -> dict[str, Any]:
    """The planner's figures, plus the same point in months."""
    months = None if result.days is None else f"{result.days / DAYS_PER_MONTH:.4f}"
    return {**result.to_dict(), "months": months}
