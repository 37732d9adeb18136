"""GCRA rate buckets for the in-process backend (Redis: the same arithmetic in ``redis_scripts``).

A bucket keeps one number, its theoretical arrival time (TAT). A request of cost c moves it to
max(TAT, now) + c * window / limit and is allowed while that stays within one window of now,
so a full window of burst is allowed and the long-run rate is the limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from costwarden.state.base import (
    GCRA_SLACK_S,
    AdmissionOutcome,
    RateBucket,
    RateState,
    Refusal,
)


@dataclass(slots=True)
class RatePlan:
    bucket: RateBucket
    tat: float
    new_tat: float
    over_s: float  # > 0: refused


def gcra(bucket: RateBucket, tat: float, now: float) -> tuple[float, float]:
    """(new theoretical arrival time, seconds over the window; <= 0 means allowed).

    A sliver of slack (1 ms, or half an emission interval if that is shorter) absorbs float
    error, so exactly ``limit`` unit-cost requests fit in a burst."""
    interval = bucket.window_s / bucket.limit
    new_tat = max(tat, now) + bucket.cost * interval
    return new_tat, (new_tat - now) - bucket.window_s - min(interval / 2, GCRA_SLACK_S)


def rate_state(bucket: RateBucket, tat: float, now: float) -> RateState:
    interval = bucket.window_s / bucket.limit
    used = max(0.0, tat - now)
    remaining = math.floor((bucket.window_s - used + min(interval / 2, GCRA_SLACK_S)) / interval)
    return RateState(bucket.key, bucket.kind, bucket.limit, max(0, remaining), used)


def rate_refusal(rate: RatePlan, now: float) -> AdmissionOutcome:
    bucket = rate.bucket
    over_window = bucket.cost > bucket.limit
    return AdmissionOutcome(
        admitted=False,
        refusal=Refusal.RATE,
        refused_key=bucket.key,
        retry_after_s=None if over_window else rate.over_s,
        rates=(rate_state(bucket, rate.tat, now),),
    )
