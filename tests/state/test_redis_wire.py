"""The plans the Redis scripts read: packed from cached pieces, byte for byte what packing the
whole document at once gives."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgpack
import pytest

from costwarden.state import redis_wire
from costwarden.state.base import (
    AdmissionPlan,
    BreakerTransition,
    RateBucket,
    RateState,
    ScopeKey,
    SessionCheck,
    VelocityCheck,
)
from costwarden.state.redis_wire import Wire

P = "{t}:"
NOW = 1_795_000_000.25


def document(plan: AdmissionPlan) -> dict[str, Any]:
    """The plan as one document, as the scripts read it."""
    doc: dict[str, Any] = {
        "lease": plan.lease_id,
        "now": plan.now,
        "exp": plan.expires_at,
        "amt": plan.amount_units,
        "tent": 1 if plan.tentative else 0,
        "scopes": [
            [P + s.key, s.cap_units, s.expires_at or 0, s.report_from_units] for s in plan.scopes
        ],
        "rates": [
            [P + r.key, r.kind, r.limit, r.charge(plan.tokens), r.window_s] for r in plan.rates
        ],
    }
    if (s := plan.session) is not None:
        fingerprint = ""
        if plan.fingerprint is not None and s.loop_repeat_k is not None:
            fingerprint = f"{P}{s.key}:fp:{plan.fingerprint}"
        doc["sess"] = {
            "k": P + s.key,
            "max": s.max_steps or 0,
            "fp": fingerprint,
            "kk": s.loop_repeat_k or 0,
            "win": s.loop_window_s,
            "trip": s.trip_seconds,
            "ttl": s.idle_ttl_s,
        }
    if (v := plan.velocity) is not None:
        doc["vel"] = {
            "k": P + v.key,
            "thr": v.threshold_units,
            "cool": v.cooldown_s,
            "probes": v.probe_requests,
            "ttl": v.ttl_s,
        }
    return doc


def packed(plan: AdmissionPlan) -> bytes:
    return bytes(msgpack.packb(document(plan)))


SCOPES = (
    ScopeKey('budget:team="q":month', Decimal("12.5"), NOW + 86_400, report_pct=50),
    ScopeKey("session:k:s:spend", Decimal(1), None, report_pct=None),
)
RATES = (
    RateBucket("rate:key=k:requests", "requests", 600, 1),
    RateBucket("rate:key=k:tokens", "tokens", 90_000, None, 30.0),
)
SESSION = SessionCheck("session:k:s", 50, 3, 60.0, 30.0, 3600.0)
NO_LOOPS = SessionCheck("session:k:t", None, None, 60.0, 30.0, 3600.0)
VELOCITY = VelocityCheck("velocity:k", Decimal("2.5"), 60.0, 2)


def plans() -> list[AdmissionPlan]:
    return [
        AdmissionPlan(
            "l1", NOW, NOW + 120, 123_456, SCOPES, RATES, SESSION, VELOCITY, False, "ab12", 4_096
        ),
        AdmissionPlan("l2", NOW + 0.5, NOW + 120.5, 7, SCOPES[:1], RATES[1:], tokens=17),
        AdmissionPlan('l\\"3', NOW, NOW + 1, 0, tentative=True, session=SESSION),
        AdmissionPlan("l4", NOW, NOW + 1, 1, SCOPES, (), NO_LOOPS, None, False, "cd34", 1),
        AdmissionPlan("l5", NOW, NOW + 1, 1, velocity=VELOCITY),
    ]


def test_every_kind_of_plan_packs_as_the_whole_document() -> None:
    wire = Wire(P)
    for _ in range(2):  # the second time from the cached pieces
        for plan in plans():
            assert wire.plan(plan) == packed(plan)


def test_a_plan_with_many_scopes_and_big_counters_round_trips() -> None:
    # Over 15 scopes the array needs a longer header; counters up to 2**53 stay exact.
    scopes = tuple(ScopeKey(f"budget:b{i}", Decimal(90_000_000), NOW) for i in range(20))
    plan = AdmissionPlan("big", NOW, NOW + 1, 2**53 - 1, scopes, RATES, tokens=2**40)
    assert Wire(P).plan(plan) == packed(plan)
    assert msgpack.unpackb(Wire(P).plan(plan))["amt"] == 2**53 - 1


def test_the_piece_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_wire, "_CACHE_LIMIT", 2)
    wire = Wire(P)
    for plan in plans() * 3:
        assert wire.plan(plan) == packed(plan)
    assert len(wire._parts) <= 2


def test_admitted_and_refused_replies() -> None:
    wire = Wire(P)
    rate = [b"{t}:rate:key=k:requests", b"requests", 600, 599, b"0.1"]
    admitted = wire.admission([b"1", b"1", b"", *rate])
    assert admitted.admitted and admitted.probe and admitted.transition is None
    assert admitted.rates == (RateState("rate:key=k:requests", "requests", 600, 599, 0.1),)
    opened = wire.admission([b"1", b"0", b"half_open"])
    assert not opened.probe and opened.transition is BreakerTransition.HALF_OPEN
    assert opened.rates == ()
    refused = wire.admission(
        [b"0", b"budget", b"{t}:budget:x", b"", b"100", b"20", b"110", b"1", b"", b"0", b""]
    )
    assert not refused.admitted and refused.first_refusal and refused.retry_after_s is None
    assert refused.refused_key == "budget:x"
    assert refused.usage is not None and refused.usage.cap == Decimal("0.0000011")
    limited = wire.admission(
        [b"0", b"rate", b"{t}:rate:key=k:tokens", b"2.5", b"0", b"0", b"0", b"0", b"", b"0", b"",
         b"{t}:rate:key=k:tokens", b"tokens", 1000, 0, b"61.5"]
    )  # fmt: skip
    assert limited.retry_after_s == 2.5
    assert limited.rates == (RateState("rate:key=k:tokens", "tokens", 1000, 0, 61.5),)
