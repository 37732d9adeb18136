"""Spot preemption: the Monte-Carlo against closed forms."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from costwarden.planner.spot import (
    FleetResult,
    JobResult,
    SpotInputs,
    expected_shard_hours,
    explain_spot,
    simulate_spot,
)


def _job(**fields: object) -> JobResult:
    values: dict[str, object] = {
        "spot_usd_per_hour": "1",
        "on_demand_usd_per_hour": "3",
        "interruptions_per_hour": 0.5,
        "cloud": "other",
    }
    values.update(fields)
    result = simulate_spot(SpotInputs.model_validate(values))
    assert isinstance(result, JobResult)
    return result


def test_daly_closed_form_by_hand() -> None:
    # W = 10 h, τ = 1800 s, δ = 60 s, λ = 0.5/h, R = 300 s: 20 segments ×
    # (1/0.5 + 300/3600) h × (e^{0.5 · 1860/3600} − 1) = 20 × 2.083333 × 0.294770 = 12.2821 h.
    assert expected_shard_hours(10, 1800, 60, 0.5, 300) == pytest.approx(12.2821, abs=1e-4)
    assert expected_shard_hours(10, 1800, 60, 0.0, 300) == pytest.approx(10 * 1860 / 1800)


def test_job_simulation_matches_the_closed_form() -> None:
    result = _job(runs=3000, seed=1)
    assert result.closed_form_shard_hours == pytest.approx(12.2821, abs=1e-4)
    assert result.mean_shard_hours == pytest.approx(12.2821, rel=0.02)
    # Spot bills every wall-clock hour at $1; on demand 10 h at $3.
    assert float(result.spot_cost) == pytest.approx(result.mean_shard_hours, rel=1e-6)
    assert result.on_demand_cost == Decimal(30)
    assert "spot is cheaper" in explain_spot(result).verdict


def test_no_interruptions_is_exact() -> None:
    result = _job(
        interruptions_per_hour=0.0,
        runs=5,
        instances=2,
        work_hours=4.0,
        checkpoint_interval_s=3600.0,
        checkpoint_s=36.0,
    )
    # Each shard: 2 h of work + 2 checkpoints of 36 s = 2.02 h; cost 2 × 2.02 × $1.
    assert result.mean_hours == pytest.approx(2.02)
    assert result.spot_cost == Decimal("4.04")
    assert result.mean_preemptions == 0


def test_saving_on_notice_loses_no_work() -> None:
    lossy = _job(runs=1500, notice_s=0.0)
    saved = _job(runs=1500, notice_s=120.0)  # 120 s notice ≥ 60 s checkpoint write
    assert saved.closed_form_shard_hours is None
    assert saved.mean_shard_hours < lossy.mean_shard_hours
    # Each reclaim then costs only δ + R = 360 s: W(1 + δ/τ) + reclaims × 0.1 h.
    floor = 10 * 1860 / 1800
    assert saved.mean_shard_hours == pytest.approx(floor + saved.mean_preemptions * 0.1, rel=0.02)


def test_cloud_presets_set_the_notice() -> None:
    base = {"spot_usd_per_hour": "1", "on_demand_usd_per_hour": "2", "interruptions_per_hour": 0}
    assert SpotInputs.model_validate({**base, "cloud": "aws"}).notice == 120.0
    assert SpotInputs.model_validate({**base, "cloud": "gcp"}).notice == 30.0
    assert SpotInputs.model_validate({**base, "cloud": "gcp", "notice_s": 5}).notice == 5.0


def test_fleet_simulation_matches_the_closed_forms() -> None:
    inputs = SpotInputs(
        mode="fleet",
        spot_usd_per_hour=Decimal(1),
        on_demand_usd_per_hour=Decimal(3),
        interruptions_per_hour=0.2,
        restart_s=600,
        notice_s=120,
        request_s=300,
        instances=4,
        runs=300,
    )
    result = simulate_spot(inputs)
    assert isinstance(result, FleetResult)
    # D = 600 − 120 = 480 s = 0.1333 h: availability 1/(1 + 0.2·0.1333) = 0.974026.
    assert result.closed_form_availability == pytest.approx(0.974026, abs=1e-6)
    assert result.availability == pytest.approx(0.974026, abs=0.002)
    # Failed share λ·(d − notice) = 0.2/3600 · 180 = 1 %.
    assert result.closed_form_failed_share == pytest.approx(0.01)
    assert result.failed_share == pytest.approx(0.01, rel=0.1)
    assert result.spot_instances_needed == math.ceil(
        4 * (1 + result.failed_share) / result.availability
    )
    assert result.on_demand_usd_per_hour == Decimal(12)
    assert "spot is cheaper" in explain_spot(result).verdict
