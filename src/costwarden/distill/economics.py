"""What the small fine-tuned model costs: serving a feature's tokens, training on its examples,
and when the training pays for itself.

The target's rates come from the ``distill.target`` config: per-million prices (default: the
fine-tuned gpt-4o-mini tariff), or a configured model priced by the price book like any request
(a self-hosted 7B from its GPU hour, a custom price). Training is billed per token of the
training file per epoch, which is how OpenAI bills it.

The break-even is the strategy planner's ``fine_tune_break_even``, fed with the feature's
recorded traffic, so ``costwarden plan strategy`` and ``distill`` never disagree on the
arithmetic. The planner prices a query from per-million rates: the feature's current rate is
its *recorded* cost per token (cost ÷ tokens, from the ledger: cache reads, discounts and a mix
of models included), so the planner's saving per query is exactly the saving the candidates
table shows. The target's per-request price and fixed monthly cost go in as the planner's fixed
cost per day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from costwarden.config import Settings
from costwarden.distill.config import TargetModel
from costwarden.errors import ConfigError
from costwarden.planner.strategy import BreakEven, fine_tune_break_even
from costwarden.pricing import PriceBook

_PER_MILLION = Decimal(1_000_000)
DAYS_PER_MONTH = Decimal("30.436875")  # the Gregorian average
_DAYS_SHOWN = Decimal(60)  # below this a break-even reads in days, above in months
_USD_QUANTUM = Decimal("1e-15")
_DAYS_QUANTUM = Decimal("1e-6")


@dataclass(frozen=True, slots=True)
class FeatureUsage:
    """One feature's recorded traffic in the window."""

    feature: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost: Decimal  # of the requests whose cost is known
    unpriced: int
    model: str  # the model that carries most of its spend
    # The days its traffic is a rate over: from the window's start, or from the start of its
    # first day with traffic when later (a feature launched last week is not a quarter of its
    # volume in a 30-day window), to the window's end.
    days: Decimal

    @property
    def tokens_per_request(self) -> float:
        return (self.input_tokens + self.output_tokens) / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class TargetRates:
    """USD per token of the target model (serving and one training epoch)."""

    name: str
    input: Decimal
    output: Decimal
    per_request: Decimal
    training: Decimal
    epochs: int
    monthly_fixed: Decimal

    def serving_cost(self, requests: int, input_tokens: int, output_tokens: int) -> Decimal:
        return self.input * input_tokens + self.output * output_tokens + self.per_request * requests

    def training_cost(self, tokens: int) -> Decimal:
        return self.training * tokens * self.epochs

    def to_dict(self) -> dict[str, str | int]:
        return {
            "name": self.name,
            "input_per_mtok": _per_mtok(self.input),
            "output_per_mtok": _per_mtok(self.output),
            "training_per_mtok": _per_mtok(self.training),
            "epochs": self.epochs,
            "monthly_fixed_usd": f"{self.monthly_fixed:f}",
        }


def _per_mtok(rate: Decimal) -> str:
    return f"{(rate * _PER_MILLION).normalize():f}"


def target_rates(
    target: TargetModel, settings: Settings, prices: PriceBook, at: datetime
) -> TargetRates:
    """The target's rates at ``at``: from the config's prices, or its configured model's."""
    training = target.training_per_mtok / _PER_MILLION
    fixed = target.monthly_fixed_usd
    if target.model is None:
        return TargetRates(
            target.name,
            target.input_per_mtok / _PER_MILLION,
            target.output_per_mtok / _PER_MILLION,
            Decimal(0),
            training,
            target.epochs,
            fixed,
        )
    model = settings.model(target.model)
    if model is None:
        raise ConfigError(f"distill.target.model {target.model!r} is not a configured model")
    price = prices.price_for(model, model.endpoints[0], at)
    if price is None:
        raise ConfigError(f"distill.target.model {target.model!r} has no known price")
    rates = price.rates
    name = target.model if target.name == TargetModel().name else target.name
    return TargetRates(
        name, rates.input, rates.output, rates.per_request, training, target.epochs, fixed
    )


def per_month(amount: Decimal, days: Decimal) -> Decimal:
    """``amount`` spent over ``days`` days, as a month at that rate."""
    return amount * DAYS_PER_MONTH / days if days > 0 else Decimal(0)


def fine_tune_payback(usage: FeatureUsage, rates: TargetRates, training_cost: Decimal) -> BreakEven:
    """The planner's break-even of ``usage`` moved to ``rates`` after paying ``training_cost``."""
    requests, input_tokens, output_tokens = usage.requests, usage.input_tokens, usage.output_tokens
    total = input_tokens + output_tokens
    recorded = usage.cost / total * _PER_MILLION if total else Decimal(0)
    per_day = Decimal(requests) / usage.days
    return fine_tune_break_even(
        training_cost_usd=training_cost,
        current_input_per_mtok=recorded,
        current_output_per_mtok=recorded,
        tuned_input_per_mtok=rates.input * _PER_MILLION,
        tuned_output_per_mtok=rates.output * _PER_MILLION,
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


def _rounded(value: Decimal, quantum: Decimal) -> str:
    return f"{value.quantize(quantum).normalize():f}"


def to_dict(result: BreakEven) -> dict[str, Any]:
    """The planner's figures, plus the same point in months. A recorded rate per token is a
    division, so per-query figures carry 28 digits of which the last are noise: they are
    rounded to 1e-15 USD, days to 1e-6."""
    days = result.days
    return {
        **result.to_dict(),
        "current_per_query": _rounded(result.current_per_query, _USD_QUANTUM),
        "tuned_per_query": _rounded(result.tuned_per_query, _USD_QUANTUM),
        "saving_per_query": _rounded(result.saving_per_query, _USD_QUANTUM),
        "days": None if days is None else _rounded(days, _DAYS_QUANTUM),
        "months": None if days is None else f"{days / DAYS_PER_MONTH:.4f}",
    }
