"""Spot capacity under preemption: a Monte-Carlo of a checkpointed job or of a serving fleet.

Preemptions arrive as a Poisson process (``interruptions_per_hour`` per instance). The provider
warns ``notice_s`` before reclaiming (AWS 120 s, GCP and Azure 30 s); a replacement is running
again ``restart_s`` after the reclaim (capacity wait + boot + model load, billed throughout —
the conservative reading).

Job: ``work_hours`` of compute split over ``instances`` independent shards, each saving a
checkpoint (``checkpoint_s`` to write) after every ``checkpoint_interval_s`` of work. On a
preemption the work since the last checkpoint is lost, unless the notice is long enough to
write one (``notice_s >= checkpoint_s``). Without that save, a shard's expected time is the
classic closed form (Daly 2006, for exponential failures):

    E[T] = (W / τ) · (1/λ + R) · (e^{λ(τ + δ)} − 1)

Fleet: ``instances`` replicas each with ``concurrency`` requests of ``request_s`` in flight at
``utilisation``; a reclaim fails every in-flight request with more than ``notice_s`` left, and
the replica is down ``max(restart_s − notice_s, 0)`` (the replacement starts at the notice).
Closed forms: availability 1/(1 + λ·D), failed share λ·(d − notice)⁺ (λ per second).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from costwarden.planner.report import Explanation, fmt_hours, fmt_pct, fmt_usd
from costwarden.planner.scenario import PlanModel, usd

NOTICE_S: dict[str, float] = {"aws": 120.0, "gcp": 30.0, "azure": 30.0}


class SpotInputs(PlanModel):
    mode: Literal["job", "fleet"] = Field("job", description="a batch job or a serving fleet")
    spot_usd_per_hour: Decimal = Field(gt=0, description="USD per instance-hour on spot")
    on_demand_usd_per_hour: Decimal = Field(gt=0, description="USD per instance-hour on demand")
    interruptions_per_hour: float = Field(ge=0, description="preemption rate per instance")
    cloud: Literal["aws", "gcp", "azure", "other"] = Field("aws", description="notice preset")
    notice_s: float | None = Field(
        None, ge=0, description="warning before reclaim (default: cloud)"
    )
    restart_s: float = Field(300.0, ge=0, description="reclaim → running again (billed)")
    instances: int = Field(1, ge=1, description="shards (job) or replicas (fleet)")
    work_hours: float = Field(10.0, gt=0, description="job: compute hours in total")
    checkpoint_interval_s: float = Field(1800.0, gt=0, description="job: work between saves")
    checkpoint_s: float = Field(60.0, ge=0, description="job: time to write a checkpoint")
    request_s: float = Field(10.0, gt=0, description="fleet: duration of one request")
    concurrency: int = Field(32, ge=1, description="fleet: requests in flight per replica")
    utilisation: float = Field(0.7, gt=0, le=1, description="fleet: busy share")
    horizon_hours: float = Field(720.0, gt=0, description="fleet: simulated period")
    runs: int = Field(2000, ge=1, description="Monte-Carlo runs")
    seed: int = Field(0, description="random seed")

    @model_validator(mode="after")
    def _notice(self) -> SpotInputs:
        if self.notice_s is None:
            object.__setattr__(self, "notice_s", NOTICE_S.get(self.cloud, 0.0))
        return self

    @property
    def notice(self) -> float:
        return float(self.notice_s or 0.0)


@dataclass(frozen=True, slots=True)
class JobResult:
    inputs: SpotInputs
    mean_hours: float  # completion: the slowest shard
    p50_hours: float
    p95_hours: float
    mean_shard_hours: float
    closed_form_shard_hours: float | None  # None when the notice lets a checkpoint be saved
    mean_preemptions: float  # per shard
    spot_cost: Decimal
    on_demand_cost: Decimal
    on_demand_hours: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": "job",
            "mean_hours": self.mean_hours,
            "p50_hours": self.p50_hours,
            "p95_hours": self.p95_hours,
            "mean_shard_hours": self.mean_shard_hours,
            "closed_form_shard_hours": self.closed_form_shard_hours,
            "mean_preemptions_per_shard": self.mean_preemptions,
            "spot_cost": f"{self.spot_cost:f}",
            "on_demand_cost": f"{self.on_demand_cost:f}",
            "on_demand_hours": self.on_demand_hours,
        }


@dataclass(frozen=True, slots=True)
class FleetResult:
    inputs: SpotInputs
    availability: float
    closed_form_availability: float
    failed_share: float
    closed_form_failed_share: float
    spot_usd_per_hour: Decimal  # for the capacity of ``instances`` on-demand replicas
    on_demand_usd_per_hour: Decimal
    spot_instances_needed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": "fleet",
            "availability": self.availability,
            "closed_form_availability": self.closed_form_availability,
            "failed_share": self.failed_share,
            "closed_form_failed_share": self.closed_form_failed_share,
            "spot_usd_per_hour": f"{self.spot_usd_per_hour:f}",
            "on_demand_usd_per_hour": f"{self.on_demand_usd_per_hour:f}",
            "spot_instances_needed": self.spot_instances_needed,
        }


def expected_shard_hours(
    work_h: float, interval_s: float, save_s: float, rate_h: float, restart_s: float
) -> float:
    """Daly's closed form (no save on notice): segments × (1/λ + R) × (e^{λ(τ+δ)} − 1)."""
    segments = work_h * 3600 / interval_s
    segment_h = (interval_s + save_s) / 3600
    if rate_h == 0:
        return segments * segment_h
    return segments * (1 / rate_h + restart_s / 3600) * math.expm1(rate_h * segment_h)


def simulate_shards(
    inputs: SpotInputs, rng: np.random.Generator, shape: tuple[int, int]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Wall-clock hours and preemption counts of every shard of every run (vectorised)."""
    work = inputs.work_hours * 3600 / inputs.instances  # seconds per shard
    interval, save, restart = inputs.checkpoint_interval_s, inputs.checkpoint_s, inputs.restart_s
    rate = inputs.interruptions_per_hour / 3600
    can_save = inputs.notice >= save
    saved = np.zeros(shape)
    clock = np.zeros(shape)
    preempted = np.zeros(shape)
    active = saved < work
    while active.any():
        segment = np.minimum(interval, work - saved)
        needed = segment + save
        gap = rng.exponential(1 / rate, shape) if rate > 0 else np.full(shape, np.inf)
        done = active & (gap >= needed)
        hit = active & ~done
        clock += np.where(done, needed, 0.0)
        saved += np.where(done, segment, 0.0)
        progress = np.minimum(gap, segment) if can_save else 0.0
        clock += np.where(hit, gap + (save if can_save else 0.0) + restart, 0.0)
        saved += np.where(hit, progress, 0.0)
        preempted += hit
        active = saved < work - 1e-9
    return clock / 3600, preempted


def simulate_job(inputs: SpotInputs) -> JobResult:
    rng = np.random.default_rng(inputs.seed)
    hours, preempted = simulate_shards(inputs, rng, (inputs.runs, inputs.instances))
    completion = hours.max(axis=1)
    closed = None
    if inputs.notice < inputs.checkpoint_s or inputs.interruptions_per_hour == 0:
        closed = expected_shard_hours(
            inputs.work_hours / inputs.instances,
            inputs.checkpoint_interval_s,
            inputs.checkpoint_s,
            inputs.interruptions_per_hour,
            inputs.restart_s,
        )
    billed = float(hours.sum(axis=1).mean())
    on_demand_hours = inputs.work_hours / inputs.instances
    return JobResult(
        inputs,
        float(completion.mean()),
        float(np.percentile(completion, 50)),
        float(np.percentile(completion, 95)),
        float(hours.mean()),
        closed,
        float(preempted.mean()),
        usd(billed * float(inputs.spot_usd_per_hour)),
        inputs.on_demand_usd_per_hour * Decimal(repr(inputs.work_hours)),
        on_demand_hours,
    )


def simulate_fleet(inputs: SpotInputs) -> FleetResult:
    """Per replica-run: Poisson reclaims over the horizon, each failing the in-flight requests
    whose remaining time exceeds the notice (in-flight count Poisson(concurrency·utilisation),
    elapsed time uniform over the request)."""
    rng = np.random.default_rng(inputs.seed)
    rate = inputs.interruptions_per_hour
    down_h = max(inputs.restart_s - inputs.notice, 0.0) / 3600
    reclaims, uptime = _alternate(
        rng, inputs.runs * inputs.instances, rate, down_h, inputs.horizon_hours
    )
    replicas = reclaims.size
    in_flight = rng.poisson(inputs.concurrency * inputs.utilisation, int(reclaims.sum()))
    elapsed = rng.uniform(0, inputs.request_s, int(in_flight.sum()))
    failed = int(np.count_nonzero(inputs.request_s - elapsed > inputs.notice))
    served = inputs.concurrency * inputs.utilisation * float(uptime.sum()) * 3600 / inputs.request_s
    availability = float(uptime.sum()) / (replicas * inputs.horizon_hours)
    closed_availability = 1 / (1 + rate * down_h)
    closed_failed = rate / 3600 * max(inputs.request_s - inputs.notice, 0.0)
    failed_share = failed / served if served else 0.0
    # Capacity of N on-demand replicas takes N / availability spot ones, and retried failures
    # add their share of work again; reclaimed replicas bill their restart time.
    needed = math.ceil(inputs.instances * (1 + failed_share) / availability - 1e-9)
    billed_share = availability + rate * inputs.restart_s / 3600
    spot_hourly = usd(needed * float(inputs.spot_usd_per_hour) * billed_share)
    return FleetResult(
        inputs,
        availability,
        closed_availability,
        failed_share,
        closed_failed,
        spot_hourly,
        inputs.on_demand_usd_per_hour * inputs.instances,
        needed,
    )


def _alternate(
    rng: np.random.Generator, replicas: int, rate_h: float, down_h: float, horizon_h: float
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Reclaim counts and up-hours of replicas alternating Exp(rate) up / ``down_h`` down."""
    if rate_h == 0:
        return np.zeros(replicas, np.int64), np.full(replicas, horizon_h)
    expected = rate_h * horizon_h
    events = int(expected + 8 * math.sqrt(expected) + 16)  # enough draws to pass the horizon
    ups = rng.exponential(1 / rate_h, (replicas, events))
    reclaim_at = np.cumsum(ups, axis=1) + np.arange(events) * down_h
    within = reclaim_at < horizon_h
    down = np.where(within, np.minimum(down_h, horizon_h - reclaim_at), 0.0)
    return within.sum(axis=1), horizon_h - down.sum(axis=1)


def simulate_spot(inputs: SpotInputs) -> JobResult | FleetResult:
    return simulate_job(inputs) if inputs.mode == "job" else simulate_fleet(inputs)


def explain_spot(result: JobResult | FleetResult) -> Explanation:
    inputs = result.inputs
    out = Explanation(
        f"Spot vs on-demand: {'batch job' if inputs.mode == 'job' else 'serving fleet'}"
    )
    out.assume(
        "prices",
        f"spot {fmt_usd(inputs.spot_usd_per_hour)}/h, on demand "
        f"{fmt_usd(inputs.on_demand_usd_per_hour)}/h per instance",
    )
    out.assume(
        "interruptions",
        f"{inputs.interruptions_per_hour:g} per instance-hour",
        "Poisson; the providers publish ranges (AWS Spot Advisor), not rates",
    )
    out.assume("notice", fmt_hours(inputs.notice), f"{inputs.cloud} preset unless given")
    out.assume("restart", fmt_hours(inputs.restart_s), "reclaim → running again, billed")
    out.assume("Monte-Carlo", f"{inputs.runs} runs, seed {inputs.seed}")
    if isinstance(result, JobResult):
        _explain_job(out, result)
    else:
        _explain_fleet(out, result)
    return out


def _explain_job(out: Explanation, result: JobResult) -> None:
    inputs = result.inputs
    out.assume("job", f"{inputs.work_hours:g} compute-hours over {inputs.instances} shard(s)")
    out.assume(
        "checkpoints",
        f"every {fmt_hours(inputs.checkpoint_interval_s)} of work, "
        f"{fmt_hours(inputs.checkpoint_s)} to write",
    )
    saves = inputs.notice >= inputs.checkpoint_s
    out.step(
        "on a reclaim: "
        + (
            "the notice is long enough to save a checkpoint, nothing is lost"
            if saves
            else "work since the last checkpoint is lost"
        )
    )
    if result.closed_form_shard_hours is not None:
        lam = inputs.interruptions_per_hour
        out.step(
            f"closed form per shard: (W/τ)·(1/λ + R)·(e^(λ(τ+δ)) − 1) with λ = {lam:g}/h "
            f"= {result.closed_form_shard_hours:.3f} h; simulated {result.mean_shard_hours:.3f} h"
        )
    out.step(
        f"completion (slowest shard): mean {result.mean_hours:.2f} h, p50 "
        f"{result.p50_hours:.2f} h, p95 {result.p95_hours:.2f} h vs "
        f"{result.on_demand_hours:.2f} h on demand; "
        f"{result.mean_preemptions:.2f} reclaims per shard"
    )
    out.step(
        f"cost: spot {fmt_usd(inputs.spot_usd_per_hour)} × billed hours = "
        f"{fmt_usd(result.spot_cost)}; on demand {fmt_usd(inputs.on_demand_usd_per_hour)} × "
        f"{inputs.work_hours:g} h = {fmt_usd(result.on_demand_cost)}"
    )
    share = result.spot_cost / result.on_demand_cost
    winner = "spot" if share < 1 else "on demand"
    out.verdict = (
        f"{winner} is cheaper: spot costs {share:.2f}× on demand and finishes in "
        f"{result.mean_hours / result.on_demand_hours:.2f}× the time (p95 "
        f"{result.p95_hours:.2f} h)"
    )


def _explain_fleet(out: Explanation, result: FleetResult) -> None:
    inputs = result.inputs
    out.assume(
        "fleet",
        f"{inputs.instances} replica(s), {inputs.concurrency} requests in flight "
        f"at {fmt_pct(inputs.utilisation)} busy, {fmt_hours(inputs.request_s)} each",
    )
    down = max(inputs.restart_s - inputs.notice, 0.0)
    out.step(
        f"availability = 1/(1 + λ·D), D = max(restart − notice, 0) = {fmt_hours(down)}: "
        f"closed form {fmt_pct(result.closed_form_availability, 2)}, simulated "
        f"{fmt_pct(result.availability, 2)}"
    )
    out.step(
        f"failed share = λ·(request − notice)⁺: closed form "
        f"{fmt_pct(result.closed_form_failed_share, 3)}, "
        f"simulated {fmt_pct(result.failed_share, 3)}"
    )
    out.step(
        f"spot replicas for the same capacity = ceil({inputs.instances} × (1 + failed) ÷ "
        f"availability) = {result.spot_instances_needed}; billed share incl. restarts"
    )
    out.step(
        f"per hour: spot {fmt_usd(result.spot_usd_per_hour)} vs on demand "
        f"{fmt_usd(result.on_demand_usd_per_hour)}"
    )
    share = result.spot_usd_per_hour / result.on_demand_usd_per_hour
    winner = "spot" if share < 1 else "on demand"
    out.verdict = (
        f"{winner} is cheaper: spot costs {share:.2f}× on demand for the same capacity, "
        f"with {fmt_pct(result.failed_share, 2)} of requests failed (retry them)"
    )
