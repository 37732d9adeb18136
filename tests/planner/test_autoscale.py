"""Fixed vs autoscale vs scale-to-zero, by hand on a four-hour day."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from costwarden.planner.autoscale import (
    AutoscaleInputs,
    diurnal_profile,
    explain_autoscale,
    plan_autoscale,
)


def _inputs(hourly: tuple[float, ...], **extra: object) -> AutoscaleInputs:
    values: dict[str, object] = {
        "hourly_rps": hourly,
        "capacity_rps": 5,
        "batch_slots": 1,
        "replica_usd_per_hour": "1",
        "cold_start_s": 360,
        "idle_timeout_s": 100,
    }
    values.update(extra)
    return AutoscaleInputs.model_validate(values)


def test_policies_by_hand() -> None:
    result = plan_autoscale(_inputs((0.0, 2.0, 8.0, 2.0)))
    # Replicas at 80 %: [1 (floor), ceil(2/4) = 1, ceil(8/4) = 2, 1].
    assert result.needed == (1, 1, 2, 1)
    fixed, auto, zero = result.policies
    assert fixed.cost == Decimal(8)  # 2 replicas × 4 h × $1
    # Autoscale: 1 + 1 + (2 + 1 scale-up × 360/3600) + 1 = 5.1 replica-hours.
    assert auto.cost == Decimal("5.1")
    # Scale-to-zero: hour 0 has no traffic (0 h); λ = 2/s never idles 100 s (1 h each).
    assert zero.cost == Decimal("4.1")
    # Waits (M/M/c, μ = 5): λ = 2 on 1 replica: 0.4/3 = 0.1333 s; λ = 8 on 2: C = 0.711111,
    # Wq = 0.711111/2 = 0.355556 s. Traffic-weighted: (2·0.1333 + 8·0.3556 + 2·0.1333)/12.
    assert auto.mean_wait_s == pytest.approx((4 * 0.4 / 3 + 8 * 0.355556) / 12, abs=1e-5)
    # Fixed runs 2 replicas all day: λ = 2 → C = 1/15, Wq = (1/15)/8.
    assert fixed.mean_wait_s == pytest.approx((4 * (1 / 15) / 8 + 8 * 0.355556) / 12, abs=1e-5)
    assert "scale-to-zero is cheapest" in explain_autoscale(result).verdict


def test_scale_to_zero_at_low_traffic() -> None:
    result = plan_autoscale(_inputs((0.001,)))
    zero = result.policy("scale-to-zero")
    # miss = e^{−0.001·100}; up = (1 − miss) + 0.001·miss·360 of the hour.
    miss = math.exp(-0.1)
    assert zero.replicas[0] == pytest.approx((1 - miss) + 0.001 * miss * 360)
    assert zero.cold_start_share == pytest.approx(miss)
    assert zero.mean_wait_s == pytest.approx(miss * 360, rel=1e-3)
    assert zero.worst_p95_wait_s == 360  # most requests of that hour wait a cold start


def test_wait_target_adds_replicas() -> None:
    loose = plan_autoscale(_inputs((3.5,), batch_slots=1))
    tight = plan_autoscale(_inputs((3.5,), batch_slots=1, max_p95_wait_s=0.2))
    assert loose.needed == (1,) and tight.needed[0] > 1
    assert tight.policy("autoscale").worst_p95_wait_s <= 0.2


def test_diurnal_profile_and_validation() -> None:
    profile = diurnal_profile("10,2,14")
    assert len(profile) == 24
    assert profile[14] == pytest.approx(10) and profile[2] == pytest.approx(2)
    with pytest.raises(ValueError, match="exactly one"):
        AutoscaleInputs(capacity_rps=1, replica_usd_per_hour=Decimal(1))
