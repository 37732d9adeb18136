"""GCRA rate buckets for the in-process backend (Redis: the same arithmetic in ``redis_scripts``).

A bucket keeps one number, its theoretical arrival time (TAT). A request of cost c moves it to
max(TAT, now) + c * window / limit and is allowed while that stays within one window of now,
so a full window of burst is allowed and the long-run rate is the limit. The bucket's slack
(``RateBucket.slack``) absorbs float error, so exactly ``limit`` unit-cost requests fit in a
burst. The admission's arithmetic is in ``MemoryStateBackend._reserve`` (on the hot path);
what a bucket reports and a refusal are here.
"""

from __future__ import annotations

import math

from costwarden.state.base import (
    AdmissionOutcome,
    RateBucket,
    RateState,
    Refusal,
)


def rate_state(bucket: RateBucket, tat: float, now: float) -> RateState:
    used = tat - now
    if used < 0:
        used = 0.0
    remaining = math.floor((bucket.window_s - used + bucket.slack) / bucket.interval)
    return RateState(bucket.key, bucket.kind, bucket.limit, remaining if remaining > 0 else 0, used)


def rate_refusal(
    bucket: RateBucket, cost: int, tat: float, over_s: float, now: float
) -> AdmissionOutcome:
    over_window = cost > bucket.limit
    return AdmissionOutcome(
        admitted=False,
        refusal=Refusal.RATE,
        refused_key=bucket.key,
        retry_after_s=None if over_window else over_s,
        rates=(rate_state(bucket, tat, now),),
    )
