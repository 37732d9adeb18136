"""API vs self-hosted: hand-computed costs, break-even and sizing."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from costwarden.planner.gpus import load_catalog
from costwarden.planner.selfhost import SelfHostInputs, explain_self_host, self_host

# API $2.50 / $10 per 1M; 1000 in + 200 out: 1000·2.5e-6 + 200·1e-5 = $0.0045 per request.
API = {"name": "big", "input_per_mtok": "2.5", "output_per_mtok": "10"}
# A made-up GPU whose figures give w exactly: r = 1280/128 = 10 and 640/128 = 5 req/s,
# q = 2, w = 128·(2 − 1)/(512 − 2·128) = 0.5.
TEST_GPU = {
    "gpus": {
        "TestGPU": {
            "memory_gb": 24,
            "memory_bandwidth_gbs": 1000,
            "prices": [
                {
                    "provider": "p",
                    "kind": "on_demand",
                    "usd_per_hour": "1.8",
                    "as_of": "2026-01",
                    "source": "test",
                },
                {
                    "provider": "p",
                    "kind": "spot",
                    "usd_per_hour": "0.9",
                    "as_of": "2026-01",
                    "source": "test",
                },
            ],
            "throughput": [
                {
                    "model_class": "7b",
                    "input_tokens": 128,
                    "output_tokens": 128,
                    "tokens_per_s": "1280",
                    "as_of": "2026-01",
                    "source": "test",
                },
                {
                    "model_class": "7b",
                    "input_tokens": 512,
                    "output_tokens": 128,
                    "tokens_per_s": "640",
                    "as_of": "2026-01",
                    "source": "test",
                },
            ],
        }
    }
}


def test_costs_across_utilisation_and_break_even() -> None:
    inputs = SelfHostInputs(
        api=API,
        input_tokens=1000,
        output_tokens=200,
        gpu_hourly_usd=Decimal(2),
        throughput_tokens_per_s=Decimal(1000),
        utilisations=(Decimal("0.5"), Decimal(1)),
    )
    result = self_host(inputs, load_catalog())
    assert result.api_per_request == Decimal("0.0045")
    assert result.capacity_rps == 5  # 1000 tok/s ÷ 200 tokens
    half, full = result.rows
    # $2 ÷ (3600 · 5 · 0.5) = $2/9000 per request; per 1M tokens at u = 1: 2/18000/1200·1e6.
    assert half.per_request == Decimal(2) / Decimal(9000)
    assert full.per_mtok == pytest.approx(Decimal("0.0925925926"), abs=Decimal("1e-9"))
    assert full.per_mtok_output == Decimal(2) / Decimal(18000) / 200 * 1_000_000
    # u* = 2 ÷ (3600 · 5 · 0.0045) = 2/81; λ* = 5·2/81 = 0.123457 req/s.
    assert result.break_even_utilisation == Decimal(2) / Decimal(81)
    assert result.break_even_rps == pytest.approx(Decimal("0.1234567901"), abs=Decimal("1e-9"))
    text = explain_self_host(result)
    assert "0.123 req/s" in text.verdict


def test_never_breaks_even_when_a_busy_gpu_costs_more() -> None:
    inputs = SelfHostInputs(
        api=API,
        input_tokens=1000,
        output_tokens=200,
        gpu_hourly_usd=Decimal(100),
        throughput_tokens_per_s=Decimal(10),
    )
    result = self_host(inputs, load_catalog())
    assert result.break_even_rps is None
    assert "never" in explain_self_host(result).verdict


def test_sizing_for_a_latency_target() -> None:
    # slots = 1, μ = 5 req/s, λ = 4: 1 replica by utilisation, but its p95 wait is
    # ln(16) = 2.77 s; the 2 s target leaves 2 − 0.2 = 1.8 s of waiting → 2 replicas.
    inputs = SelfHostInputs(
        api=API,
        input_tokens=1000,
        output_tokens=200,
        gpu_hourly_usd=Decimal(2),
        throughput_tokens_per_s=Decimal(1000),
        requests_per_s=Decimal(4),
        batch_slots=1,
        latency_target_s=Decimal(2),
    )
    sizing = self_host(inputs, load_catalog()).sizing
    assert sizing is not None and sizing.feasible
    assert sizing.replicas == 2
    assert sizing.service_time_s == pytest.approx(0.2)
    assert sizing.p95_wait_s == pytest.approx(math.log((8 / 35) / 0.05) / 6)
    assert sizing.fleet_usd_per_day == Decimal(96)  # 2 × $2 × 24
    assert sizing.api_usd_per_day == Decimal("1555.2")  # 4 × 86400 × 0.0045


def test_latency_target_below_the_service_time_is_infeasible() -> None:
    inputs = SelfHostInputs(
        api=API,
        input_tokens=1000,
        output_tokens=200,
        gpu_hourly_usd=Decimal(2),
        throughput_tokens_per_s=Decimal(1000),
        requests_per_s=Decimal(4),
        batch_slots=32,
        latency_target_s=Decimal(1),
    )
    sizing = self_host(inputs, load_catalog()).sizing
    assert sizing is not None and not sizing.feasible
    assert "batch_slots" in sizing.reason


def test_catalog_gpu_throughput_is_adjusted_to_the_workload() -> None:
    catalog = load_catalog(TEST_GPU)
    # 300 in / 100 out is nearest the 512/128 figure (log distance 0.78 vs 1.10):
    # 5 req/s × (128 + 0.5·512) ÷ (100 + 0.5·300) × 100 = 768 tok/s.
    inputs = SelfHostInputs(
        api=API, input_tokens=300, output_tokens=100, gpu="TestGPU", price_kind="spot"
    )
    result = self_host(inputs, catalog)
    assert result.serving.tokens_per_s == Decimal(768)
    assert result.serving.hourly_usd == Decimal("0.9")
    assert result.capacity_rps == Decimal("7.68")


def test_without_gpu_or_numbers_it_says_what_is_missing() -> None:
    inputs = SelfHostInputs(api=API, input_tokens=10, output_tokens=10)
    with pytest.raises(ValueError, match="gpu_hourly_usd"):
        self_host(inputs, load_catalog())
