"""The seed's summarisation service as a ready scenario, with its arithmetic and sensitivities.

"Summarise 1M articles/day for $100/day with a fine-tuned 7B model on spot A10Gs, batched,
truncated to 4k tokens." Every default below is that sentence or a stated assumption; all of
them can be changed (``plan design --articles-per-day …`` or a scenario file's ``design:``).

The cost model is linear, so it is printed as one line of arithmetic:

    GPU-seconds per article = (summary + w·prompt) ÷ K          K: token-steps/s of one GPU
    cost/day = articles × GPU-s/article ÷ 3600 ÷ utilisation × spot overhead × padding × $/GPU-h

and each break-even (the spot price, throughput or article length at which the budget is just
met) is that line solved for one input. The batch APIs are priced from genai-prices with their
batch discount (50 % at OpenAI, Anthropic and Google).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import numpy as np
from pydantic import Field

from costwarden.planner.gpus import Catalog, PriceKind, tokens_per_s_at
from costwarden.planner.lengths import LengthDistribution, LengthSource, fixed, parse_lengths
from costwarden.planner.padding import static_waste
from costwarden.planner.scenario import (
    HUNDRED,
    MILLION,
    SECONDS_PER_HOUR,
    ApiPrice,
    PlanModel,
    ceil_int,
    lookup_api_price,
)

# Batch APIs compared by default: (genai-prices model, provider), all at a 50 % batch discount.
DEFAULT_BATCH_APIS: tuple[tuple[str, str], ...] = (
    ("gemini-2.0-flash-lite", "google"),
    ("gpt-4.1-nano", "openai"),
    ("gpt-4o-mini", "openai"),
    ("claude-3-5-haiku", "anthropic"),
)
BATCH_DISCOUNT_PCT = Decimal(50)


class DesignInputs(PlanModel):
    articles_per_day: Decimal = Field(Decimal(1_000_000), gt=0, description="articles per day")
    budget_usd_per_day: Decimal = Field(Decimal(100), gt=0, description="budget per day")
    article_tokens: LengthSource = Field(
        "lognormal:1000,0.6", description="article length distribution before truncation"
    )
    truncate_tokens: int = Field(4096, ge=1, description="articles are cut to this many tokens")
    prompt_overhead_tokens: int = Field(60, ge=0, description="instructions per request")
    summary_tokens: int = Field(150, ge=1, description="tokens per summary")
    gpu: str = Field("A10G", description="catalog GPU")
    model_class: str = Field("7b", description="catalog model class")
    price_kind: PriceKind = Field("spot", description="on_demand or spot")
    provider: str | None = Field(None, description="catalog price provider")
    gpu_hourly_usd: Decimal | None = Field(None, gt=0, description="override: USD per GPU-hour")
    throughput_tokens_per_s: Decimal | None = Field(
        None, gt=0, description="override: summary tokens/s per GPU at these lengths"
    )
    input_token_weight: Decimal | None = Field(None, ge=0, description="prompt vs output cost")
    utilisation: Decimal = Field(Decimal("0.9"), gt=0, le=1, description="busy share (batch)")
    interruptions_per_hour: Decimal = Field(Decimal("0.05"), ge=0, description="spot reclaims")
    restart_s: Decimal = Field(Decimal(300), ge=0, description="reclaim → running again")
    lost_work_s: Decimal = Field(Decimal(60), ge=0, description="in-flight work lost per reclaim")
    static_batch_size: int | None = Field(None, ge=1, description="static batching (padding)")
    batch_apis: tuple[ApiPrice, ...] | None = Field(None, description="default: genai-prices")
    tokens_swing_pct: Decimal = Field(Decimal(50), ge=0, lt=100, description="sensitivity ±")
    throughput_swing_pct: Decimal = Field(Decimal(30), ge=0, lt=100, description="sensitivity ±")
    price_swing_pct: Decimal = Field(Decimal(50), ge=0, lt=100, description="sensitivity ±")


@dataclass(frozen=True, slots=True)
class DesignPoint:
    """The cost line's inputs; ``cost_per_day`` and the break-evens are derived from them."""

    articles: Decimal
    prompt_tokens: Decimal  # overhead + mean truncated article
    summary_tokens: Decimal
    weight: Decimal
    capacity: Decimal  # K: token-steps/s of one GPU
    utilisation: Decimal
    spot_overhead: Decimal
    padding: Decimal  # 1 ÷ (1 − static waste); 1 for continuous batching
    gpu_hourly: Decimal

    @property
    def gpu_seconds_per_article(self) -> Decimal:
        return (self.summary_tokens + self.weight * self.prompt_tokens) / self.capacity

    @property
    def gpu_hours(self) -> Decimal:
        busy = self.articles * self.gpu_seconds_per_article / SECONDS_PER_HOUR
        return busy / self.utilisation * self.spot_overhead * self.padding

    @property
    def cost_per_day(self) -> Decimal:
        return self.gpu_hours * self.gpu_hourly

    @property
    def gpus(self) -> int:
        return ceil_int(self.gpu_hours / 24)


@dataclass(frozen=True, slots=True)
class Sensitivity:
    name: str
    low_label: str
    low_cost: Decimal
    high_label: str
    high_cost: Decimal
    break_even: str  # the value of this input at which cost = budget


@dataclass(frozen=True, slots=True)
class ApiOption:
    price: ApiPrice
    cost_per_day: Decimal


@dataclass(frozen=True, slots=True)
class DesignResult:
    inputs: DesignInputs
    point: DesignPoint
    article_mean: float  # after truncation
    truncated_share: float  # articles longer than the cut
    sources: tuple[tuple[str, str, str], ...]
    sensitivities: tuple[Sensitivity, ...]
    apis: tuple[ApiOption, ...]
    throughput_estimated: bool = False  # the catalog figure used is an estimate

    @property
    def fits_budget(self) -> bool:
        return self.point.cost_per_day <= self.inputs.budget_usd_per_day

    def to_dict(self) -> dict[str, Any]:
        p = self.point
        return {
            "cost_per_day": f"{p.cost_per_day:f}",
            "budget_per_day": f"{self.inputs.budget_usd_per_day:f}",
            "fits_budget": self.fits_budget,
            "gpu_hours_per_day": f"{p.gpu_hours:f}",
            "gpus": p.gpus,
            "prompt_tokens": f"{p.prompt_tokens:f}",
            "capacity_token_steps_per_s": f"{p.capacity:f}",
            "gpu_seconds_per_article": f"{p.gpu_seconds_per_article:f}",
            "sensitivities": [
                {
                    "name": s.name,
                    "low": s.low_label,
                    "low_cost": f"{s.low_cost:f}",
                    "high": s.high_label,
                    "high_cost": f"{s.high_cost:f}",
                    "break_even": s.break_even,
                }
                for s in self.sensitivities
            ],
            "batch_apis": [
                {"name": a.price.name, "cost_per_day": f"{a.cost_per_day:f}"} for a in self.apis
            ],
        }


def default_batch_apis() -> tuple[ApiPrice, ...]:
    out = []
    for model, provider in DEFAULT_BATCH_APIS:
        rates = lookup_api_price(model, provider)
        if rates is not None:
            out.append(
                ApiPrice(
                    name=f"{model} batch",
                    model=model,
                    provider=provider,
                    input_per_mtok=rates[0],
                    output_per_mtok=rates[1],
                    discount_pct=BATCH_DISCOUNT_PCT,
                )
            )
    return tuple(out)


def _articles(inputs: DesignInputs) -> tuple[LengthDistribution, float]:
    raw = parse_lengths(inputs.article_tokens)
    cut = raw.truncated(inputs.truncate_tokens)
    return cut, float(raw.probs[raw.values > inputs.truncate_tokens].sum())


def _dec(value: float) -> Decimal:
    return Decimal(repr(round(value, 6)))


def design(inputs: DesignInputs, catalog: Catalog) -> DesignResult:
    articles, truncated_share = _articles(inputs)
    prompt = inputs.prompt_overhead_tokens + _dec(articles.mean)
    summary = inputs.summary_tokens
    sources: list[tuple[str, str, str]] = []
    weight = inputs.input_token_weight
    if weight is None:
        weight, how = catalog.input_weight(inputs.gpu, inputs.model_class)
        sources.append(("prompt-token weight w", f"{weight:.3f}", how))
    tokens = inputs.throughput_tokens_per_s
    estimated = False
    if tokens is None:
        figure = catalog.figure(inputs.gpu, inputs.model_class, int(prompt), summary)
        tokens = tokens_per_s_at(figure, int(prompt), summary, weight) / figure.gpus
        estimated = figure.estimate
        sources.append(
            (
                f"{inputs.gpu} {inputs.model_class} throughput",
                f"{figure.tokens_per_s} tok/s at {figure.input_tokens}/{figure.output_tokens}",
                figure.cite(),
            )
        )
    hourly = inputs.gpu_hourly_usd
    if hourly is None:
        price = catalog.price(inputs.gpu, inputs.price_kind, inputs.provider)
        hourly = price.usd_per_hour
        sources.append(
            (f"{inputs.gpu} {price.kind} price", f"${price.usd_per_hour}/GPU-h", price.cite())
        )
    # K from the throughput at the scenario's own lengths: T·(summary + w·prompt)/summary.
    capacity = tokens * (summary + weight * int(prompt)) / summary
    spot = Decimal(1)
    if inputs.price_kind == "spot":
        spot += (
            inputs.interruptions_per_hour
            * (inputs.restart_s + inputs.lost_work_s)
            / SECONDS_PER_HOUR
        )
    point = DesignPoint(
        inputs.articles_per_day,
        prompt,
        Decimal(summary),
        weight,
        capacity,
        inputs.utilisation,
        spot,
        _padding(inputs, articles, weight),
        hourly,
    )
    apis = inputs.batch_apis if inputs.batch_apis is not None else default_batch_apis()
    options = tuple(
        ApiOption(api, inputs.articles_per_day * api.per_request(prompt, summary)) for api in apis
    )
    return DesignResult(
        inputs,
        point,
        articles.mean,
        truncated_share,
        tuple(sources),
        _sensitivities(inputs, point),
        options,
        estimated,
    )


def _padding(inputs: DesignInputs, articles: LengthDistribution, weight: Decimal) -> Decimal:
    if inputs.static_batch_size is None:
        return Decimal(1)
    prompts = LengthDistribution(
        (articles.values + inputs.prompt_overhead_tokens).astype(np.int64),
        articles.probs,
        articles.label,
    )
    waste = static_waste(
        fixed(inputs.summary_tokens), prompts, inputs.static_batch_size, float(weight)
    )[2]
    return 1 / (1 - _dec(waste))


def _sensitivities(inputs: DesignInputs, point: DesignPoint) -> tuple[Sensitivity, ...]:
    budget, cost = inputs.budget_usd_per_day, point.cost_per_day
    tokens, speed, price = (
        x / HUNDRED
        for x in (inputs.tokens_swing_pct, inputs.throughput_swing_pct, inputs.price_swing_pct)
    )
    article = point.prompt_tokens - inputs.prompt_overhead_tokens
    steps = point.summary_tokens + point.weight * point.prompt_tokens
    # Solve cost = budget for each input (cost is linear in steps, 1/K and the price).
    max_steps = steps * budget / cost
    max_article = (
        (max_steps - point.summary_tokens) / point.weight - inputs.prompt_overhead_tokens
        if point.weight
        else None
    )

    def with_article(factor: Decimal) -> Decimal:
        prompt = inputs.prompt_overhead_tokens + article * factor
        return replace(point, prompt_tokens=prompt).cost_per_day

    return (
        Sensitivity(
            "tokens per article",
            f"{article * (1 - tokens):,.0f}",
            with_article(1 - tokens),
            f"{article * (1 + tokens):,.0f}",
            with_article(1 + tokens),
            "any length" if max_article is None else f"{max_article:,.0f} tokens",
        ),
        Sensitivity(
            "GPU throughput",
            f"−{inputs.throughput_swing_pct}%",
            replace(point, capacity=point.capacity * (1 - speed)).cost_per_day,
            f"+{inputs.throughput_swing_pct}%",
            replace(point, capacity=point.capacity * (1 + speed)).cost_per_day,
            f"{cost / budget * 100:.0f}% of assumed",
        ),
        Sensitivity(
            "spot price",
            f"${point.gpu_hourly * (1 - price):.3f}/h",
            replace(point, gpu_hourly=point.gpu_hourly * (1 - price)).cost_per_day,
            f"${point.gpu_hourly * (1 + price):.3f}/h",
            replace(point, gpu_hourly=point.gpu_hourly * (1 + price)).cost_per_day,
            f"${point.gpu_hourly * budget / cost:.3f}/GPU-h",
        ),
    )


def per_million_tokens(result: DesignResult) -> Decimal:
    p = result.point
    return p.cost_per_day / (p.articles * (p.prompt_tokens + p.summary_tokens)) * MILLION
