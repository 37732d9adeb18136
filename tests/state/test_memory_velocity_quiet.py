"""The in-process velocity breaker's shortcut: a closed breaker whose current and previous
minute together spent under the threshold is not evaluated further."""

from __future__ import annotations

from costwarden.state.base import VELOCITY_BUCKET_S
from costwarden.state.memory_velocity import VelocityState


def test_the_sliding_rate_never_exceeds_the_two_buckets_it_is_made_of() -> None:
    velocity = VelocityState()
    start = 1_795_000_000.0
    for step in range(400):
        now = start + step * VELOCITY_BUCKET_S / 97  # crosses many bucket boundaries
        velocity.add(1000 + step, now)
        assert velocity.rate(now) <= velocity.previous + velocity.current


def test_quiet_only_while_closed_and_under_the_threshold() -> None:
    velocity = VelocityState(current=600, previous=400)
    assert velocity.quiet(1000)
    assert not velocity.quiet(999)
    velocity.open(1_795_000_000.0, cooldown_s=60)
    assert not velocity.quiet(10**12)  # an open breaker is always evaluated
    velocity.state = "half_open"
    assert not velocity.quiet(10**12)
