"""``costwarden distill candidates``: which features a small fine-tuned model should serve.

For every feature with traffic in the window (requests tagged ``x-costwarden-feature``):

- from the ledger: requests, tokens, spend and the model that carries most of it;
- from its captured pairs (if any): how repetitive its prompts are, and how long;
- the month at the window's rate, on the current model (recorded spend) and on the target
  (the same tokens at the target's rates, plus its fixed monthly cost);
- the training it would take: examples (its distinct captured prompts, else
  ``candidates.default_training_examples``) × tokens per example × epochs × training price;
- when that training is paid back (the strategy planner's ``fine_tune_break_even``).

Ranking: features that are *ready* (at least 10 distinct captured examples, the minimum a
fine-tuning job accepts, and a near-duplicate share of at least ``min_repetitiveness``) come
first; within each group the largest net saving over ``horizon_months`` leads. The assumption
that the small model answers in as many tokens as the current one is stated in the docs: it is
an estimate, as any re-pricing of recorded usage is.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from costwarden.distill.config import CandidatesConfig
from costwarden.distill.economics import (
    FeatureUsage,
    TargetRates,
    fine_tune_payback,
    per_month,
    to_dict,
)
from costwarden.distill.similarity import Repetitiveness, repetitiveness
from costwarden.distill.storage import CapturedPair, PairStore
from costwarden.ledger.store import SpendRow, Store
from costwarden.planner.strategy import BreakEven

MIN_EXAMPLES = 10  # the fewest a fine-tuning job accepts (OpenAI)
_GROUPS = ("feature", "model", "day")
_SECONDS_PER_DAY = Decimal(86400)


@dataclass(frozen=True, slots=True)
class CapturedStats:
    """What a feature's captured pairs say (``pairs`` 0: nothing captured)."""

    pairs: int = 0
    unique_prompts: int = 0
    tokens_per_example: float = 0.0
    prompt_tokens: float = 0.0
    answer_tokens: float = 0.0
    repetition: Repetitiveness | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    usage: FeatureUsage
    captured: CapturedStats
    monthly_current: Decimal
    monthly_target: Decimal
    training_examples: int
    training_tokens: int
    training_cost: Decimal
    break_even: BreakEven
    horizon_months: int
    ready: bool

    @property
    def monthly_saving(self) -> Decimal:
        return self.monthly_current - self.monthly_target

    @property
    def horizon_saving(self) -> Decimal:
        """Saved over the horizon, training paid."""
        return self.monthly_saving * self.horizon_months - self.training_cost

    def to_dict(self) -> dict[str, Any]:
        usage, captured = self.usage, self.captured
        return {
            "feature": usage.feature,
            "model": usage.model,
            "requests": usage.requests,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "spend": f"{usage.cost:f}",
            "unpriced_requests": usage.unpriced,
            "captured_pairs": captured.pairs,
            "unique_prompts": captured.unique_prompts,
            "repetitiveness": captured.repetition.to_dict() if captured.repetition else None,
            "avg_prompt_tokens": round(captured.prompt_tokens, 1),
            "avg_answer_tokens": round(captured.answer_tokens, 1),
            "monthly_current": f"{self.monthly_current:.6f}",
            "monthly_target": f"{self.monthly_target:.6f}",
            "monthly_saving": f"{self.monthly_saving:.6f}",
            "training_examples": self.training_examples,
            "training_tokens": self.training_tokens,
            "training_cost": f"{self.training_cost:.6f}",
            "break_even": to_dict(self.break_even),
            f"saving_{self.horizon_months}_months": f"{self.horizon_saving:.6f}",
            "ready": self.ready,
        }


def feature_usage(rows: list[SpendRow], window: tuple[datetime, datetime]) -> list[FeatureUsage]:
    """Per feature, from spend rows grouped by (feature, model, day); untagged traffic is left
    out (nothing routes it to a fine-tune by feature)."""
    by_feature: dict[str, list[SpendRow]] = defaultdict(list)
    for row in rows:
        feature = row.group.get("feature")
        if feature is not None:
            by_feature[feature].append(row)
    return [_usage(feature, group, window) for feature, group in by_feature.items()]


def _usage(feature: str, rows: list[SpendRow], window: tuple[datetime, datetime]) -> FeatureUsage:
    by_model: dict[str, tuple[Decimal, int]] = defaultdict(lambda: (Decimal(0), 0))
    for row in rows:
        cost, requests = by_model[str(row.group.get("model"))]
        by_model[str(row.group.get("model"))] = (cost + row.cost, requests + row.requests)
    since, until = window
    first_day = datetime.fromisoformat(min(str(r.group.get("day")) for r in rows))
    start = max(since, first_day.replace(tzinfo=UTC))
    return FeatureUsage(
        feature=feature,
        requests=sum(r.requests for r in rows),
        input_tokens=sum(r.input_tokens for r in rows),
        output_tokens=sum(r.output_tokens for r in rows),
        cost=sum((r.cost for r in rows), Decimal(0)),
        unpriced=sum(r.unknown_cost_requests for r in rows),
        model=max(by_model, key=lambda m: by_model[m]),
        days=Decimal((until - start).total_seconds()) / _SECONDS_PER_DAY,
    )


def captured_stats(pairs: list[CapturedPair], config: CandidatesConfig) -> CapturedStats:
    if not pairs:
        return CapturedStats()
    count = len(pairs)
    prompts = [
        "\n".join(f"{m['role']}: {m['content']}" for m in pair.messages[:-1]) for pair in pairs
    ]
    hashes = [pair.prompt_hash for pair in pairs]
    prompt_tokens = sum(p.input_tokens for p in pairs) / count
    answer_tokens = sum(p.output_tokens for p in pairs) / count
    return CapturedStats(
        pairs=count,
        unique_prompts=len(set(hashes)),
        tokens_per_example=prompt_tokens + answer_tokens,
        prompt_tokens=prompt_tokens,
        answer_tokens=answer_tokens,
        repetition=repetitiveness(prompts, hashes, config.near_duplicate_jaccard),
    )


def _ready(captured: CapturedStats, config: CandidatesConfig) -> bool:
    repetition = captured.repetition
    return (
        captured.unique_prompts >= MIN_EXAMPLES
        and repetition is not None
        and repetition.near_duplicate_share >= config.min_repetitiveness
    )


def monthly_costs(usage: FeatureUsage, rates: TargetRates) -> tuple[Decimal, Decimal]:
    """(a month on the current model, a month on the target) at the feature's rate."""
    target = rates.serving_cost(usage.requests, usage.input_tokens, usage.output_tokens)
    days = usage.days
    return per_month(usage.cost, days), per_month(target, days) + rates.monthly_fixed


async def usage_of(
    store: Store, feature: str, window: tuple[datetime, datetime]
) -> FeatureUsage | None:
    """One feature's recorded traffic (None: none in the window)."""
    rows = await store.spend(_GROUPS, *window, filters={"feature": feature})
    usages = feature_usage(rows, window)
    return usages[0] if usages else None


def candidate(
    usage: FeatureUsage,
    captured: CapturedStats,
    rates: TargetRates,
    config: CandidatesConfig,
) -> Candidate:
    """One feature's economics (see module docstring)."""
    monthly_current, monthly_target = monthly_costs(usage, rates)
    if captured.unique_prompts >= MIN_EXAMPLES:
        examples = min(captured.unique_prompts, config.max_training_examples)
        per_example = captured.tokens_per_example
    else:
        examples, per_example = config.default_training_examples, usage.tokens_per_request
    tokens = round(examples * per_example)
    training = rates.training_cost(tokens)
    payback = fine_tune_payback(usage, rates, training)
    return Candidate(
        usage,
        captured,
        monthly_current,
        monthly_target,
        examples,
        tokens,
        training,
        payback,
        config.horizon_months,
        _ready(captured, config),
    )


def rank(candidates: list[Candidate]) -> list[Candidate]:
    """Ready features first, then by net saving over the horizon, largest first."""
    return sorted(candidates, key=lambda c: (c.ready, c.horizon_saving), reverse=True)


async def find_candidates(
    store: Store,
    pairs: PairStore,
    rates: TargetRates,
    config: CandidatesConfig,
    window: tuple[datetime, datetime],
) -> list[Candidate]:
    """Every feature of the window, ranked (see module docstring)."""
    since, until = window
    rows = await store.spend(_GROUPS, since, until)
    found = []
    for usage in feature_usage(rows, window):
        captured = await pairs.pairs(usage.feature, until, since, config.max_analysed_pairs)
        stats = captured_stats(captured, config)
        found.append(candidate(usage, stats, rates, config))
    return rank(found)
