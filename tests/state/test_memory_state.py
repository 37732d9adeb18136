"""What the in-process backend keeps between requests: bounded under steady load."""

from __future__ import annotations

from decimal import Decimal

from costwarden.state.base import (
    AdmissionPlan,
    RateBucket,
    ScopeKey,
    SessionCheck,
    usd_to_units_up,
)
from costwarden.state.memory import MemoryStateBackend

NOW = 1_795_000_000.0
LEASE = 120.0


def step(i: int, now: float, fingerprint: str) -> AdmissionPlan:
    return AdmissionPlan(
        lease_id=f"l{i}",
        now=now,
        expires_at=now + LEASE,
        amount_units=usd_to_units_up(Decimal("0.001")),
        scopes=(ScopeKey("budget:global:day:x", Decimal(1000), now + 86_400),),
        rates=(RateBucket("rate:key=k:rpm", "requests", 1_000_000, 1),),
        session=SessionCheck("session:k:s", None, 3, 60.0, 30.0, 3600.0),
        fingerprint=fingerprint,
    )


async def test_settled_requests_leave_no_expiry_work_behind() -> None:
    state = MemoryStateBackend()
    for i in range(2000):
        now = NOW + i / 100
        assert (await state.admit(step(i, now, f"fp{i}"))).admitted
        assert (await state.settle(f"l{i}", Decimal("0.0005"), None, now)).applied
    # One entry per counter, bucket and session: none per settled lease.
    assert len(state._expiry_heap) <= 3
    assert not state._lease_due and not state._leases


async def test_loop_detection_counts_a_fingerprint_seen_once_then_repeated() -> None:
    state = MemoryStateBackend()
    assert (await state.admit(step(0, NOW, "same"))).admitted
    assert (await state.admit(step(1, NOW + 1, "same"))).admitted
    refused = await state.admit(step(2, NOW + 2, "same"))
    assert not refused.admitted and refused.trip_reason == "loop"


async def test_a_single_sighting_outside_the_loop_window_does_not_count() -> None:
    state = MemoryStateBackend()
    assert (await state.admit(step(0, NOW, "same"))).admitted
    assert (await state.admit(step(1, NOW + 61, "same"))).admitted
    assert (await state.admit(step(2, NOW + 62, "same"))).admitted
    refused = await state.admit(step(3, NOW + 63, "same"))
    assert not refused.admitted and refused.trip_reason == "loop"


async def test_settlement_leaves_out_counters_below_their_report_mark() -> None:
    state = MemoryStateBackend()
    watched = ScopeKey("budget:team=ml:day:x", Decimal(1), report_pct=50)
    quiet = ScopeKey("session:k:s:spend", Decimal(1), report_pct=None)
    always = ScopeKey("budget:global:day:x", Decimal(1))
    units = usd_to_units_up(Decimal("0.30"))
    for lease in ("a", "b"):
        admitted = await state.admit(
            AdmissionPlan(lease, NOW, NOW + LEASE, units, (watched, quiet, always))
        )
        assert admitted.admitted
    below = await state.settle("a", Decimal("0.30"), None, NOW)
    above = await state.settle("b", Decimal("0.30"), None, NOW)
    assert [s.key for s in below.scopes] == [always.key]
    assert [s.key for s in above.scopes] == [watched.key, always.key]
