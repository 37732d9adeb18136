"""Padding waste: closed-form order statistics, and the simulations against them."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from costwarden.planner.lengths import lognormal, parse_lengths, uniform
from costwarden.planner.padding import PaddingInputs, explain_padding, padding


def test_two_point_lengths_by_hand() -> None:
    # Lengths 1 or 2, B = 2: E[max] = 1·¼ + 2·¾ = 1.75, mean 1.5, waste = 1 − 1.5/1.75 = 1/7.
    result = padding(PaddingInputs(output_lengths="uniform:1,2", batch_size=2, simulate_requests=0))
    assert result.outputs.expected_max(2) == pytest.approx(1.75)
    assert result.static_waste == pytest.approx(1 / 7)
    assert result.cost_ratio == Decimal("1.166667")  # 1 ÷ (1 − 1/7) = 7/6


@pytest.mark.parametrize("batch", [2, 8, 32])
def test_uniform_lengths_match_the_closed_form(batch: int) -> None:
    n = 1000
    # Discrete uniform 1..n: E[max of B] = Σ_{k=1}^{n} (1 − ((k−1)/n)^B); mean (n+1)/2.
    expected_max = sum(1 - ((k - 1) / n) ** batch for k in range(1, n + 1))
    waste = 1 - (n + 1) / 2 / expected_max
    result = padding(
        PaddingInputs(
            output_lengths=f"uniform:1,{n}", batch_size=batch, simulate_requests=20_000, seed=3
        )
    )
    assert result.static_waste == pytest.approx(waste, rel=1e-9)
    # The continuous limit 1 − (B+1)/(2B) is within 0.1 % of it for n = 1000.
    assert result.static_waste == pytest.approx(1 - (batch + 1) / (2 * batch), abs=1e-3)
    assert result.simulated_static_waste == pytest.approx(waste, abs=0.01)
    # Continuous batching idles slots only during the final drain.
    assert result.continuous_waste < 0.01


def test_prompts_padded_too() -> None:
    # Answers fixed at 100; prompts 100 or 300 (equally likely); w = 0.5; B = 2.
    # E[max prompt] = 100·¼ + 300·¾ = 250. useful = 100 + 0.5·200 = 200,
    # padded = 100 + 0.5·250 = 225, waste = 1 − 200/225 = 1/9.
    result = padding(
        PaddingInputs(
            output_lengths="fixed:100",
            input_lengths="values:100,300",
            batch_size=2,
            input_token_weight=Decimal("0.5"),
            simulate_requests=4000,
        )
    )
    assert (result.mean_cost, result.padded_cost) == (pytest.approx(200), pytest.approx(225))
    assert result.static_waste == pytest.approx(1 / 9)
    assert result.simulated_static_waste == pytest.approx(1 / 9, abs=0.01)
    assert result.throughput_ratio == pytest.approx(9 / 8, abs=0.01)
    assert "static costs 1.12× as much" in explain_padding(result).verdict


def test_length_distributions() -> None:
    # Lognormal mean e^{μ + σ²/2} = 200·e^{0.32} = 275.4 (tail beyond the table < 1e-6).
    assert lognormal(200, 0.8).mean == pytest.approx(200 * math.exp(0.32), rel=2e-3)
    capped = lognormal(200, 0.8, 256)
    assert capped.max == 256 and capped.probs.sum() == pytest.approx(1.0)
    assert uniform(1, 4).truncated(2).probs.tolist() == [0.25, 0.75]
    assert parse_lengths([3, 3, 5]).mean == pytest.approx(11 / 3)
    with pytest.raises(ValueError, match="bad length distribution"):
        parse_lengths("gamma:1,2")
