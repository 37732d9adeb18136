"""The per-key spend-velocity breaker, for the in-process backend (Redis: ``redis_scripts``).

closed → (spend over the threshold in the last minute) → open → (cooldown) → half-open: up to
``probe_requests`` requests go through; once they have settled, the breaker closes if the spend
since it opened stays under the threshold, else opens again. Opening restarts the spend window,
so half-open judges only spend caused after the trip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from costwarden.state.base import (
    VELOCITY_BUCKET_S,
    AdmissionOutcome,
    BreakerTransition,
    Refusal,
    VelocityCheck,
)


@dataclass(slots=True)
class VelocityState:
    state: Literal["closed", "open", "half_open"] = "closed"
    open_until: float = 0.0
    probes_inflight: int = 0
    probes_done: int = 0
    bucket: int = 0  # index of the current 60 s bucket
    current: int = 0  # units spent in the current bucket
    previous: int = 0  # units spent in the bucket before
    expires_at: float = 0.0

    def quiet(self, threshold_units: int) -> bool:
        """Closed, and cannot be over ``threshold_units``: the sliding-window rate is at most
        ``previous + current``. The usual case, decided without the rate's arithmetic."""
        return self.state == "closed" and self.previous + self.current <= threshold_units

    def rate(self, now: float) -> float:
        """Sliding-window estimate of units spent in the last minute."""
        index = math.floor(now / VELOCITY_BUCKET_S)
        weight = 1.0 - (now - index * VELOCITY_BUCKET_S) / VELOCITY_BUCKET_S
        if index == self.bucket:
            return self.previous * weight + self.current
        if index == self.bucket + 1:
            return self.current * weight
        return 0.0

    def add(self, units: int, now: float) -> None:
        index = math.floor(now / VELOCITY_BUCKET_S)
        if index == self.bucket + 1:
            self.previous, self.current = self.current, 0
        elif index != self.bucket:
            self.previous = self.current = 0
        self.bucket = index
        self.current += units

    def open(self, now: float, cooldown_s: float) -> None:
        # The window restarts so that half-open judges only spend caused after the trip.
        self.state, self.open_until = "open", now + cooldown_s
        self.previous = self.current = 0


def check_velocity(
    velocity: VelocityState, check: VelocityCheck, now: float
) -> tuple[BreakerTransition | None, AdmissionOutcome | None, bool]:
    """(transition, refusal or None, admit as probe) for the key's spend-velocity breaker."""
    threshold = check.threshold_units
    transition: BreakerTransition | None = None
    if velocity.state == "open":
        if now < velocity.open_until:
            return None, _velocity_refusal(check, velocity.open_until - now, None), False
        velocity.state, velocity.probes_inflight, velocity.probes_done = "half_open", 0, 0
        transition = BreakerTransition.HALF_OPEN
    if velocity.state == "half_open":
        if velocity.probes_done < check.probe_requests:
            if velocity.probes_inflight + velocity.probes_done >= check.probe_requests:
                return transition, _probe_busy(check, transition), False
            return transition, None, True
        if velocity.rate(now) > threshold:
            velocity.open(now, check.cooldown_s)
            opened = BreakerTransition.OPENED
            return opened, _velocity_refusal(check, check.cooldown_s, opened), False
        velocity.state = "closed"
        transition = BreakerTransition.CLOSED
    if velocity.rate(now) > threshold:
        velocity.open(now, check.cooldown_s)
        opened = BreakerTransition.OPENED
        return opened, _velocity_refusal(check, check.cooldown_s, opened), False
    return transition, None, False


def _velocity_refusal(
    check: VelocityCheck, retry_after_s: float, transition: BreakerTransition | None
) -> AdmissionOutcome:
    return AdmissionOutcome(
        admitted=False,
        refusal=Refusal.VELOCITY_OPEN,
        refused_key=check.key,
        retry_after_s=retry_after_s,
        transition=transition,
    )


def _probe_busy(check: VelocityCheck, transition: BreakerTransition | None) -> AdmissionOutcome:
    return AdmissionOutcome(
        admitted=False,
        refusal=Refusal.PROBE_BUSY,
        refused_key=check.key,
        retry_after_s=1.0,
        transition=transition,
    )
