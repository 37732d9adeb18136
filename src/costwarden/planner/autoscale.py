"""Fixed fleet vs autoscaling vs scale-to-zero over hourly traffic: cost and queueing delay.

Each hour is an M/M/c queue (``queueing.py``) at that hour's mean request rate; the replicas an
hour needs are the fewest meeting the utilisation cap (and p95 wait target, if any).

- fixed: the peak hour's replicas, all day.
- autoscale: each hour's replicas (at least ``min_replicas``), scaled up ``cold_start_s`` ahead
  of the hour on the known daily pattern, so added replicas are billed that much extra.
- scale-to-zero: as autoscale, but an hour one replica can serve keeps it only while requests
  come: with Poisson arrivals at λ/s and idle timeout T it is up a share
  ``(1 − e^{−λT}) + λ·e^{−λT}·C`` of the hour (C = cold start, billed), and a share ``e^{−λT}``
  of requests find it down and wait C.

The hours form a repeating cycle (a day profile): the first hour scales from the last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import Field, model_validator

from costwarden.planner.queueing import QueueStats, mmc, replicas_needed
from costwarden.planner.report import Explanation, fmt_hours, fmt_num, fmt_pct, fmt_usd
from costwarden.planner.scenario import PlanModel, usd


class AutoscaleInputs(PlanModel):
    hourly_rps: tuple[float, ...] | None = Field(None, description="mean requests/s per hour")
    diurnal: str | None = Field(None, description="PEAK,TROUGH[,PEAK_HOUR] req/s day profile")
    capacity_rps: float = Field(gt=0, description="requests/s one replica serves saturated")
    replica_usd_per_hour: Decimal = Field(gt=0, description="USD per replica-hour")
    batch_slots: int = Field(32, ge=1, description="sequences a replica serves at once")
    max_utilisation: float = Field(0.8, gt=0, le=1, description="utilisation cap per hour")
    max_p95_wait_s: float | None = Field(None, gt=0, description="p95 queueing wait target")
    min_replicas: int = Field(1, ge=1, description="autoscale floor")
    cold_start_s: float = Field(120.0, ge=0, description="replica start to ready")
    idle_timeout_s: float = Field(300.0, gt=0, description="scale-to-zero idle timeout")

    @model_validator(mode="after")
    def _traffic(self) -> AutoscaleInputs:
        if (self.hourly_rps is None) == (self.diurnal is None):
            raise ValueError("give exactly one of hourly_rps, diurnal")
        return self

    def traffic(self) -> list[float]:
        if self.hourly_rps is not None:
            if not self.hourly_rps or min(self.hourly_rps) < 0:
                raise ValueError("hourly_rps needs at least one hour, none negative")
            return list(self.hourly_rps)
        return diurnal_profile(str(self.diurnal))


def diurnal_profile(spec: str) -> list[float]:
    """24 hourly rates on a cosine between TROUGH and PEAK, peaking at PEAK_HOUR (default 14)."""
    parts = [float(p) for p in spec.split(",")]
    if len(parts) not in (2, 3) or parts[1] > parts[0] or parts[1] < 0:
        raise ValueError("diurnal is PEAK,TROUGH[,PEAK_HOUR] with 0 <= TROUGH <= PEAK")
    peak, trough = parts[0], parts[1]
    at = parts[2] if len(parts) == 3 else 14.0
    return [
        trough + (peak - trough) * (1 + math.cos(2 * math.pi * (h - at) / 24)) / 2
        for h in range(24)
    ]


@dataclass(frozen=True, slots=True)
class PolicyResult:
    name: str
    replicas: tuple[float, ...]  # billed replicas per hour (fractional for scale-to-zero)
    cost: Decimal
    mean_wait_s: float  # traffic-weighted, queueing plus cold starts
    worst_p95_wait_s: float
    cold_start_share: float

    @property
    def replica_hours(self) -> float:
        return sum(self.replicas)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "replicas": list(self.replicas),
            "replica_hours": self.replica_hours,
            "cost": f"{self.cost:f}",
            "mean_wait_s": self.mean_wait_s,
            "worst_p95_wait_s": self.worst_p95_wait_s,
            "cold_start_share": self.cold_start_share,
        }


@dataclass(frozen=True, slots=True)
class AutoscaleResult:
    inputs: AutoscaleInputs
    traffic: tuple[float, ...]
    needed: tuple[int, ...]
    policies: tuple[PolicyResult, ...]

    def policy(self, name: str) -> PolicyResult:
        return next(p for p in self.policies if p.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "traffic_rps": list(self.traffic),
            "needed": list(self.needed),
            "policies": [p.to_dict() for p in self.policies],
        }


def _stats(inputs: AutoscaleInputs, rate: float, replicas: int) -> QueueStats:
    return mmc(
        rate, inputs.capacity_rps / inputs.batch_slots, max(replicas, 1) * inputs.batch_slots
    )


def _waits(
    inputs: AutoscaleInputs, traffic: list[float], replicas: list[int]
) -> tuple[float, float]:
    total = sum(traffic)
    stats = [_stats(inputs, rate, n) for rate, n in zip(traffic, replicas, strict=True)]
    mean = (
        sum(r * s.mean_wait_s for r, s in zip(traffic, stats, strict=True)) / total
        if total
        else 0.0
    )
    worst = max((s.p95_wait_s for r, s in zip(traffic, stats, strict=True) if r > 0), default=0.0)
    return mean, worst


def _scale_ups(replicas: list[int]) -> list[int]:
    return [max(n - replicas[h - 1], 0) for h, n in enumerate(replicas)]


def plan_autoscale(inputs: AutoscaleInputs) -> AutoscaleResult:
    traffic = inputs.traffic()
    need = [
        replicas_needed(
            rate,
            inputs.capacity_rps,
            inputs.batch_slots,
            max_utilisation=inputs.max_utilisation,
            max_p95_wait_s=inputs.max_p95_wait_s,
        )
        for rate in traffic
    ]
    price = float(inputs.replica_usd_per_hour)
    warm = inputs.cold_start_s / 3600

    fixed_n = [max(need)] * len(traffic)
    fixed = PolicyResult(
        "fixed",
        tuple(map(float, fixed_n)),
        usd(sum(fixed_n) * price),
        *_waits(inputs, traffic, fixed_n),
        0.0,
    )

    auto_n = [max(n, inputs.min_replicas) for n in need]
    auto_billed = [n + up * warm for n, up in zip(auto_n, _scale_ups(auto_n), strict=True)]
    auto = PolicyResult(
        "autoscale",
        tuple(auto_billed),
        usd(sum(auto_billed) * price),
        *_waits(inputs, traffic, auto_n),
        0.0,
    )
    return AutoscaleResult(
        inputs, tuple(traffic), tuple(need), (fixed, auto, _scale_to_zero(inputs, traffic, need))
    )


def _scale_to_zero(inputs: AutoscaleInputs, traffic: list[float], need: list[int]) -> PolicyResult:
    price = float(inputs.replica_usd_per_hour)
    timeout, cold = inputs.idle_timeout_s, inputs.cold_start_s
    billed: list[float] = []
    cold_requests = cold_delay = worst_cold = 0.0
    ups = _scale_ups(need)
    for rate, n, up in zip(traffic, need, ups, strict=True):
        if n > 1:
            billed.append(n + up * cold / 3600)
            continue
        miss = math.exp(-rate * timeout)  # P(an arrival finds the replica down)
        billed.append(min(1.0, (1 - miss) + rate * miss * cold))
        cold_requests += rate * miss
        cold_delay += rate * miss * cold
        if rate > 0 and miss > 0.05:  # over 5 % of this hour's requests wait a cold start
            worst_cold = cold
    total = sum(traffic)
    queue_mean, worst = _waits(inputs, traffic, need)
    mean = queue_mean + (cold_delay / total if total else 0.0)
    worst = max(worst, worst_cold)
    share = cold_requests / total if total else 0.0
    return PolicyResult(
        "scale-to-zero", tuple(billed), usd(sum(billed) * price), mean, worst, share
    )


def explain_autoscale(result: AutoscaleResult) -> Explanation:
    inputs = result.inputs
    hours = len(result.traffic)
    out = Explanation(f"Autoscaling over {hours} hours of traffic")
    out.assume(
        "traffic",
        f"{min(result.traffic):.3g}..{max(result.traffic):.3g} req/s, "
        f"mean {sum(result.traffic) / hours:.3g}",
        "hourly_rps" if inputs.hourly_rps is not None else f"diurnal {inputs.diurnal}",
    )
    out.assume(
        "replica",
        f"{inputs.capacity_rps:g} req/s saturated, {inputs.batch_slots} slots, "
        f"{fmt_usd(inputs.replica_usd_per_hour)}/h",
    )
    out.assume("utilisation cap", fmt_pct(inputs.max_utilisation))
    if inputs.max_p95_wait_s is not None:
        out.assume("p95 wait target", fmt_hours(inputs.max_p95_wait_s))
    out.assume("cold start", fmt_hours(inputs.cold_start_s), "scale-ups happen this much early")
    out.assume("idle timeout", fmt_hours(inputs.idle_timeout_s), "scale-to-zero")
    out.step(
        f"replicas per hour = ceil(λ ÷ ({inputs.capacity_rps:g} × {inputs.max_utilisation:g}))"
        f", raised until the M/M/c p95 wait meets the target: peak {max(result.needed)}"
    )
    for policy in result.policies:
        out.step(
            f"{policy.name}: {policy.replica_hours:.2f} replica-hours × "
            f"{fmt_usd(inputs.replica_usd_per_hour)} = {fmt_usd(policy.cost)}"
        )
    out.table(
        "Policies",
        ("policy", "replica-hours", "cost", "mean wait", "worst p95 wait", "cold starts"),
        [
            (
                p.name,
                fmt_num(p.replica_hours, 2),
                fmt_usd(p.cost),
                fmt_hours(p.mean_wait_s),
                fmt_hours(p.worst_p95_wait_s),
                fmt_pct(p.cold_start_share, 2),
            )
            for p in result.policies
        ],
    )
    fixed = result.policy("fixed")
    best = min(result.policies, key=lambda p: p.cost)
    saving = 1 - best.cost / fixed.cost if fixed.cost else Decimal(0)
    out.verdict = (
        f"{best.name} is cheapest at {fmt_usd(best.cost)} per {hours} h "
        f"({fmt_pct(saving)} below a fixed fleet of {max(result.needed)}), mean wait "
        f"{fmt_hours(best.mean_wait_s)}"
    )
    return out
