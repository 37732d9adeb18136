"""RAG vs long context vs fine-tuning: total cost over a horizon, and where they cross.

Each strategy is an up-front cost, a cost per query, a cost per day and, optionally, a cost
that recurs every N days (re-indexing, re-training):

- long context: every query sends the whole context (``context_tokens``); a share of it may be
  billed at the provider's cache-read price.
- RAG: a query sends the ``retrieved_tokens`` a search found, plus an embedding of the
  question; indexing the corpus is up front; the vector store is a monthly fee.
- fine-tuning: training up front (``training_usd``, or tokens × epochs × $/1M), then short
  prompts at the tuned model's price, plus any fixed hosting per day.

``fine_tune_break_even`` is the stable entry point other modules (distillation) call.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from itertools import combinations
from typing import Any

from pydantic import Field

from costwarden.planner.report import Explanation, fmt_num, fmt_usd
from costwarden.planner.scenario import MILLION, ApiPrice, PlanModel, ceil_int, plain

_DAYS_PER_MONTH = Decimal(30)


class StrategyInputs(PlanModel):
    queries_per_day: Decimal = Field(gt=0, description="queries per day")
    horizon_days: int = Field(365, ge=1, description="days to compare over")
    model: ApiPrice
    question_tokens: int = Field(200, ge=0, description="instructions + question per query")
    output_tokens: int = Field(300, ge=0, description="answer tokens per query")
    context_tokens: int = Field(100_000, ge=0, description="long context: tokens per query")
    cached_share: Decimal = Field(Decimal(0), ge=0, le=1, description="context billed as cache")
    cache_read_per_mtok: Decimal | None = Field(None, ge=0, description="cache-read $/1M")
    retrieved_tokens: int = Field(4000, ge=0, description="RAG: retrieved tokens per query")
    embedding_per_mtok: Decimal = Field(Decimal("0.02"), ge=0, description="embedding $/1M")
    corpus_tokens: int = Field(1_000_000, ge=0, description="RAG: tokens to index")
    vector_store_usd_per_month: Decimal = Field(Decimal(0), ge=0, description="RAG store fee")
    reindex_every_days: int | None = Field(None, ge=1, description="RAG: re-embed corpus")
    tuned: ApiPrice
    training_usd: Decimal | None = Field(None, ge=0, description="one training run, USD")
    training_tokens: int = Field(0, ge=0, description="training set tokens")
    training_epochs: int = Field(3, ge=1, description="epochs")
    training_per_mtok: Decimal = Field(Decimal(0), ge=0, description="training $/1M tokens")
    tuned_question_tokens: int | None = Field(None, ge=0, description="prompt after tuning")
    tuned_fixed_usd_per_day: Decimal = Field(Decimal(0), ge=0, description="hosting per day")
    retrain_every_days: int | None = Field(None, ge=1, description="fine-tune: retrain period")

    def training_cost(self) -> Decimal:
        if self.training_usd is not None:
            return self.training_usd
        return self.training_tokens * self.training_epochs * self.training_per_mtok / MILLION


@dataclass(frozen=True, slots=True)
class StrategyCost:
    name: str
    upfront: Decimal
    per_query: Decimal
    per_day: Decimal  # fixed daily fees
    recurring: Decimal = Decimal(0)
    every_days: int | None = None

    def daily(self, queries_per_day: Decimal) -> Decimal:
        return self.per_day + queries_per_day * self.per_query

    def total(self, day: int, queries_per_day: Decimal) -> Decimal:
        """Cumulative cost after ``day`` days (a recurring cost lands at the end of its period)."""
        repeats = day // self.every_days if self.every_days else 0
        return self.upfront + day * self.daily(queries_per_day) + repeats * self.recurring

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "upfront": f"{self.upfront:f}",
            "per_query": f"{self.per_query:f}",
            "per_day": f"{self.per_day:f}",
            "recurring": f"{self.recurring:f}",
            "every_days": self.every_days,
        }


@dataclass(frozen=True, slots=True)
class Crossover:
    cheaper_later: str
    cheaper_first: str
    day: int | None  # first day the later one is at or under the first; None: not in horizon
    analytic_day: Decimal | None  # linear part only: ΔF ÷ Δdaily


@dataclass(frozen=True, slots=True)
class StrategyResult:
    inputs: StrategyInputs
    strategies: tuple[StrategyCost, ...]
    totals: dict[str, Decimal]  # at the horizon
    crossovers: tuple[Crossover, ...]

    def curve(self, name: str) -> list[Decimal]:
        """Cumulative cost for days 0..horizon."""
        strategy = next(s for s in self.strategies if s.name == name)
        q = self.inputs.queries_per_day
        return [strategy.total(day, q) for day in range(self.inputs.horizon_days + 1)]

    @property
    def cheapest(self) -> str:
        return min(self.totals, key=lambda name: self.totals[name])

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategies": [s.to_dict() for s in self.strategies],
            "totals": {k: f"{v:f}" for k, v in self.totals.items()},
            "crossovers": [
                {
                    "cheaper_later": c.cheaper_later,
                    "cheaper_first": c.cheaper_first,
                    "day": c.day,
                    "analytic_day": None if c.analytic_day is None else f"{c.analytic_day:f}",
                }
                for c in self.crossovers
            ],
        }


def strategy_costs(inputs: StrategyInputs) -> tuple[StrategyCost, ...]:
    model, q_tokens, out_tokens = inputs.model, inputs.question_tokens, inputs.output_tokens
    cached = inputs.context_tokens * inputs.cached_share
    cache_rate = (
        model.input_rate
        if inputs.cache_read_per_mtok is None
        else (inputs.cache_read_per_mtok / MILLION)
    )
    long_query = (
        model.per_request(q_tokens + inputs.context_tokens - cached, out_tokens)
        + cached * cache_rate
    )
    embed = inputs.embedding_per_mtok / MILLION
    index = inputs.corpus_tokens * embed
    rag = StrategyCost(
        "rag",
        index,
        model.per_request(q_tokens + inputs.retrieved_tokens, out_tokens) + q_tokens * embed,
        inputs.vector_store_usd_per_month / _DAYS_PER_MONTH,
        index if inputs.reindex_every_days else Decimal(0),
        inputs.reindex_every_days,
    )
    tuned_q = q_tokens if inputs.tuned_question_tokens is None else inputs.tuned_question_tokens
    training = inputs.training_cost()
    fine_tune = StrategyCost(
        "fine-tune",
        training,
        inputs.tuned.per_request(tuned_q, out_tokens),
        inputs.tuned_fixed_usd_per_day,
        training if inputs.retrain_every_days else Decimal(0),
        inputs.retrain_every_days,
    )
    return (StrategyCost("long-context", Decimal(0), long_query, Decimal(0)), rag, fine_tune)


def compare_strategies(inputs: StrategyInputs) -> StrategyResult:
    strategies = strategy_costs(inputs)
    q, horizon = inputs.queries_per_day, inputs.horizon_days
    totals = {s.name: s.total(horizon, q) for s in strategies}
    crossings = tuple(_crossover(a, b, q, horizon) for a, b in combinations(strategies, 2))
    return StrategyResult(inputs, strategies, totals, tuple(c for c in crossings if c))


def _crossover(a: StrategyCost, b: StrategyCost, q: Decimal, horizon: int) -> Crossover | None:
    """Which of the two is cheaper at first, and the first day the other catches up."""
    first, later = (a, b) if a.total(1, q) <= b.total(1, q) else (b, a)
    day = next((d for d in range(1, horizon + 1) if later.total(d, q) < first.total(d, q)), None)
    slope = first.daily(q) - later.daily(q)
    analytic = (later.upfront - first.upfront) / slope if slope > 0 else None
    if day is None and analytic is None:
        return None
    return Crossover(later.name, first.name, day, analytic)


@dataclass(frozen=True, slots=True)
class BreakEven:
    """When fine-tuning a (small) model pays for itself against the current model."""

    current_per_query: Decimal
    tuned_per_query: Decimal
    saving_per_query: Decimal  # current − tuned (negative: the tuned model costs more)
    queries: int | None  # queries until training is paid back; None: never
    days: Decimal | None  # at ``queries_per_day``; None without a volume or when never

    def to_dict(self) -> dict[str, Any]:
        return {
            "current_per_query": f"{self.current_per_query:f}",
            "tuned_per_query": f"{self.tuned_per_query:f}",
            "saving_per_query": f"{self.saving_per_query:f}",
            "queries": self.queries,
            "days": None if self.days is None else f"{self.days:f}",
        }


def fine_tune_break_even(
    *,
    training_cost_usd: Decimal,
    current_input_per_mtok: Decimal,
    current_output_per_mtok: Decimal,
    tuned_input_per_mtok: Decimal,
    tuned_output_per_mtok: Decimal,
    input_tokens: int | Decimal,
    output_tokens: int | Decimal,
    tuned_input_tokens: int | Decimal | None = None,
    tuned_output_tokens: int | Decimal | None = None,
    queries_per_day: int | Decimal | None = None,
    tuned_fixed_usd_per_day: Decimal = Decimal(0),
) -> BreakEven:
    """Queries (and days, given a volume) after which a fine-tuned model beats the current one.

    Stable signature (keyword-only; prices in USD per 1M tokens, token counts per query):

    - ``training_cost_usd``: one-off cost of training (data generation included if you like).
    - ``current_*_per_mtok`` / ``tuned_*_per_mtok``: the two models' prices.
    - ``input_tokens`` / ``output_tokens``: a query on the current model; the tuned model's
      default to the same (``tuned_input_tokens`` is usually shorter: no few-shot examples).
    - ``queries_per_day``: volume, to express the answer in days.
    - ``tuned_fixed_usd_per_day``: fixed cost of serving the tuned model (a dedicated GPU);
      needs ``queries_per_day``.

    Returns ``BreakEven``: ``queries = ceil(training ÷ saving per query)`` (with a fixed daily
    cost: ``days = training ÷ (queries_per_day × saving − fixed)``, ``queries = ceil(days ×
    queries_per_day)``); ``None`` when fine-tuning never pays back.
    """
    tuned_in = input_tokens if tuned_input_tokens is None else tuned_input_tokens
    tuned_out = output_tokens if tuned_output_tokens is None else tuned_output_tokens
    current = (
        Decimal(input_tokens) * current_input_per_mtok
        + Decimal(output_tokens) * current_output_per_mtok
    ) / MILLION
    tuned = (
        Decimal(tuned_in) * tuned_input_per_mtok + Decimal(tuned_out) * tuned_output_per_mtok
    ) / MILLION
    saving = current - tuned
    if tuned_fixed_usd_per_day and queries_per_day is None:
        raise ValueError("a fixed daily cost needs queries_per_day to break even against")
    if queries_per_day is None:
        queries = ceil_int(training_cost_usd / saving) if saving > 0 else None
        return BreakEven(current, tuned, saving, queries, None)
    net = Decimal(queries_per_day) * saving - tuned_fixed_usd_per_day
    if net <= 0:
        return BreakEven(current, tuned, saving, None, None)
    days = training_cost_usd / net
    return BreakEven(current, tuned, saving, ceil_int(days * Decimal(queries_per_day)), days)


def explain_strategies(result: StrategyResult) -> Explanation:
    inputs = result.inputs
    q = inputs.queries_per_day
    out = Explanation(
        f"RAG vs long context vs fine-tuning over {inputs.horizon_days} days "
        f"at {fmt_num(q)} queries/day"
    )
    out.assume("model", inputs.model.label())
    out.assume("tuned model", inputs.tuned.label())
    out.assume("query", f"{inputs.question_tokens} question + {inputs.output_tokens} answer tokens")
    out.assume(
        "long context",
        f"{fmt_num(inputs.context_tokens)} tokens, "
        f"{plain(inputs.cached_share * 100)} % billed as cache reads",
    )
    out.assume(
        "RAG",
        f"{fmt_num(inputs.retrieved_tokens)} retrieved tokens, corpus "
        f"{fmt_num(inputs.corpus_tokens)} tokens at ${plain(inputs.embedding_per_mtok)}/1M",
    )
    out.assume(
        "training",
        fmt_usd(inputs.training_cost()),
        f"retrain every {inputs.retrain_every_days} days" if inputs.retrain_every_days else "once",
    )
    for s in result.strategies:
        out.step(
            f"{s.name}: {fmt_usd(s.upfront)} up front + day × ({fmt_usd(s.per_day)} + "
            f"{fmt_num(q)} × {fmt_usd(s.per_query)}) = {fmt_usd(s.upfront)} + "
            f"{fmt_usd(s.daily(q))}/day"
            + (f" + {fmt_usd(s.recurring)} every {s.every_days} days" if s.every_days else "")
        )
    for c in result.crossovers:
        when = f"day {c.day}" if c.day is not None else f"not within {inputs.horizon_days} days"
        analytic = "" if c.analytic_day is None else f" (ΔF ÷ Δdaily = {c.analytic_day:.1f} days)"
        out.step(f"{c.cheaper_later} overtakes {c.cheaper_first}: {when}{analytic}")
    marks = sorted({1, 30, 90, 180, inputs.horizon_days} & set(range(1, inputs.horizon_days + 1)))
    out.table(
        "Cumulative cost",
        ("strategy", *[f"day {d}" for d in marks]),
        [(s.name, *[fmt_usd(s.total(d, q)) for d in marks]) for s in result.strategies],
    )
    best = result.cheapest
    out.verdict = (
        f"over {inputs.horizon_days} days {best} is cheapest at {fmt_usd(result.totals[best])}"
    )
    return out
