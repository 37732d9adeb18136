"""What the small fine-tuned model costs: serving a feature's tokens, training on its examples,
and when the training pays for itself (the break-even, from the strategy planner).

The target's rates come from the ``distill.target`` config: per-million prices (default: the
fine-tuned gpt-4o-mini tariff), or a configured model priced by the price book like any request
(a self-hosted 7B from its GPU hour, a custom price). Training is billed per token of the
training file per epoch, which is how OpenAI bills it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from costwarden.config import Settings
from costwarden.distill.config import TargetModel
from costwarden.errors import ConfigError
from costwarden.pricing import PriceBook

_PER_MILLION = Decimal(1_000_000)
DAYS_PER_MONTH = Decimal("30.436875")  # the Gregorian average


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
