"""The summarisation design: hand-computed scenarios, and the seed's default."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest

from costwarden.planner.design import DesignInputs, design
from costwarden.planner.design_report import explain_design
from costwarden.planner.gpus import load_catalog

CHEAP_API = {
    "name": "cheap batch",
    "input_per_mtok": "0.1",
    "output_per_mtok": "0.4",
    "discount_pct": "50",
}
# 1M articles of exactly 1000 tokens, no instructions, 100-token summaries, w = 0.5,
# 500 summary tokens/s per GPU at these lengths, $0.50/GPU-h spot.
HAND: dict[str, Any] = {
    "article_tokens": "fixed:1000",
    "prompt_overhead_tokens": 0,
    "summary_tokens": 100,
    "input_token_weight": "0.5",
    "throughput_tokens_per_s": "500",
    "gpu_hourly_usd": "0.5",
    "batch_apis": [CHEAP_API],
}


def test_hand_computed_design() -> None:
    result = design(DesignInputs.model_validate(HAND), load_catalog())
    p = result.point
    # K = 500 × (100 + 0.5·1000) ÷ 100 = 3000 token-steps/s; 600 ÷ 3000 = 0.2 GPU-s per article.
    assert p.capacity == Decimal(3000)
    assert p.gpu_seconds_per_article == Decimal("0.2")
    # 1e6 × 0.2 ÷ 3600 ÷ 0.9 × (1 + 0.05 × 360/3600 = 1.005) = 62.037 GPU-h → $31.02, 3 GPUs.
    assert p.spot_overhead == Decimal("1.005")
    assert p.gpu_hours == pytest.approx(Decimal("62.0370370"), abs=Decimal("1e-6"))
    assert p.cost_per_day == pytest.approx(Decimal("31.0185185"), abs=Decimal("1e-6"))
    assert p.gpus == 3
    assert result.fits_budget
    tokens, speed, price = result.sensitivities
    # Budget solved for each input: price 0.5 × 100/31.0185 = $1.612; token-steps
    # 600 × 100/31.0185 = 1934.3 → article (1934.3 − 100)/0.5 = 3,669 tokens; speed 31 %.
    assert price.break_even == "$1.612/GPU-h"
    assert tokens.break_even == "3,669 tokens"
    assert speed.break_even == "31% of assumed"
    # ±50 % article tokens: steps 100 + 0.5·500 = 350 and 100 + 0.5·1500 = 850 (of 600).
    assert tokens.low_cost == pytest.approx(p.cost_per_day * 350 / 600)
    assert tokens.high_cost == pytest.approx(p.cost_per_day * 850 / 600)
    # Batch API: 1e6 × (1000 × $0.05/1M + 100 × $0.2/1M) = $70/day.
    assert result.apis[0].cost_per_day == Decimal(70)
    text = explain_design(result)
    assert text.verdict.startswith("fits the budget: $31.02/day on 3 A10Gs")
    assert any("= $31.02" in line for line in text.arithmetic)


def test_truncation_and_static_batching() -> None:
    truncated = design(
        DesignInputs.model_validate({**HAND, "article_tokens": "fixed:5000"}), load_catalog()
    )
    assert truncated.point.prompt_tokens == 4096 and truncated.truncated_share == 1.0
    # Prompts 500 or 1500, B = 2: E[max] = 1250; useful 100 + 0.5·1000 = 600,
    # padded 100 + 0.5·1250 = 725: static batching costs 725/600 = 1.2083×.
    static = design(
        DesignInputs.model_validate(
            {**HAND, "article_tokens": "values:500,1500", "static_batch_size": 2}
        ),
        load_catalog(),
    )
    assert static.point.padding == pytest.approx(Decimal(725) / 600, abs=Decimal("1e-5"))


def test_the_seed_scenario_from_the_catalog() -> None:
    result = design(DesignInputs(batch_apis=(CHEAP_API,)), load_catalog())  # type: ignore[arg-type]
    p = result.point
    # E[min(X, 4096)] for lognormal(ln 1000, 0.6), closed form:
    # e^{μ+σ²/2}·Φ((ln c − μ − σ²)/σ) + c·(1 − Φ((ln c − μ)/σ)) = 1187.7.
    mu, sigma, cut = math.log(1000), 0.6, 4096

    def phi(x: float) -> float:
        return 0.5 * (1 + math.erf(x / math.sqrt(2)))

    mean = math.exp(mu + sigma**2 / 2) * phi((math.log(cut) - mu - sigma**2) / sigma) + cut * (
        1 - phi((math.log(cut) - mu) / sigma)
    )
    assert result.article_mean == pytest.approx(mean, abs=0.5)
    # A10G 7b figure nearest 1248/150 is 2048/128 at 180 tok/s (estimate); w fitted from it
    # and the 128/128 figure; K = (180/128) × (128 + w·2048).
    q = Decimal(1300) / 180
    w = 128 * (q - 1) / (2048 - 128 * q)
    assert p.weight == w
    assert p.capacity == pytest.approx(Decimal(180) / 128 * (128 + w * 2048), abs=Decimal("1e-6"))
    assert p.gpu_hourly == Decimal("0.40")  # catalog A10G spot
    expected = (
        Decimal(1_000_000)
        * (150 + w * p.prompt_tokens)
        / p.capacity
        / 3600
        / Decimal("0.9")
        * Decimal("1.005")
        * Decimal("0.40")
    )
    assert p.cost_per_day == pytest.approx(expected, abs=Decimal("1e-9"))
    assert result.throughput_estimated
    assert "plan measure" in explain_design(result).verdict
    assert len(result.sensitivities) == 3
