"""Rate limits and circuit breakers through the engine, on both backends."""

from __future__ import annotations

from decimal import Decimal

import pytest

from costwarden.errors import BreakerOpen, RateLimited
from costwarden.policy.config import (
    BreakerConfig,
    RateLimitRule,
    SessionBreakerConfig,
    VelocityBreakerConfig,
)
from costwarden.policy.engine import AdmissionRequest
from costwarden.policy.events import BreakerEvent, MemoryEventSink
from costwarden.policy.ratelimit import go_duration, rate_limit_header_pairs
from costwarden.records import Principal, Tags
from costwarden.state.base import RateState, usd_to_units_up
from costwarden.state.memory import MemoryStateBackend
from tests.policy.conftest import make

KEY = Principal(key_id="k-1", user="u", team="t")


def request(
    cost="0.01", *, tokens=100, max_out=100, session=None, fingerprint=None, principal=KEY
) -> AdmissionRequest:
    return AdmissionRequest(
        principal=principal,
        tags=Tags(session=session),
        model="gpt-4o",
        estimated_input_tokens=tokens,
        max_output_tokens=max_out,
        worst_case_units=usd_to_units_up(Decimal(cost)),
        fingerprint=fingerprint,
    )


def breaker_events(sink: MemoryEventSink) -> list[tuple[str, str]]:
    return [(e.breaker, e.state) for e in sink.events if isinstance(e, BreakerEvent)]


async def test_rpm_admits_the_limit_and_reports_openai_headers(backend, clock, sink):
    engine = make(backend, clock, sink, rate_limits=(RateLimitRule(scope={"key": "*"}, rpm=3),))
    admissions = [await engine.admit(request()) for _ in range(3)]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in admissions] == ["2", "1", "0"]
    assert admissions[0].headers["x-ratelimit-limit-requests"] == "3"
    assert admissions[0].headers["x-ratelimit-reset-requests"] == "20s"
    with pytest.raises(RateLimited) as caught:
        await engine.admit(request())
    assert caught.value.headers["retry-after"] == "20"
    assert caught.value.headers["x-ratelimit-remaining-requests"] == "0"
    assert "rate:key=k-1:rpm" in caught.value.message
    other = Principal(key_id="k-2")
    await engine.admit(request(principal=other))  # per-key limit: k-2 has its own
    clock.advance(20)
    await engine.admit(request())


async def test_tpm_charges_the_worst_case_and_settlement_corrects_it(backend, clock, sink):
    engine = make(backend, clock, sink, rate_limits=(RateLimitRule(tpm=1000),))
    first = await engine.admit(request(tokens=100, max_out=500))
    with pytest.raises(RateLimited):
        await engine.admit(request(tokens=100, max_out=500))
    await engine.settle(first, Decimal("0.001"), 150)
    second = await engine.admit(request(tokens=100, max_out=500))
    assert second.headers["x-ratelimit-remaining-tokens"] == "250"


async def test_a_request_over_the_whole_tpm_says_so(backend, clock, sink):
    engine = make(backend, clock, sink, rate_limits=(RateLimitRule(tpm=1000),))
    with pytest.raises(RateLimited, match="more than the limit") as caught:
        await engine.admit(request(tokens=900, max_out=200))
    assert caught.value.headers["x-should-retry"] == "false"


def test_reset_durations_use_the_openai_format():
    assert [go_duration(s) for s in (0.02, 1.5, 20, 360)] == ["20ms", "1.5s", "20s", "6m0s"]


def test_reset_headers_match_go_duration_around_the_precomputed_range():
    # Sub-second resets come from a precomputed table; they must read as go_duration would.
    resets = [i / 10_000 for i in range(0, 12_000, 7)] + [0.9994999, 0.9995, 0.99951, -0.5, 61.2]
    for reset in resets:
        states = (RateState("rate:key=k:rpm", "requests", 10, 3, reset),)
        pairs = dict(rate_limit_header_pairs(states))
        assert pairs[b"x-ratelimit-reset-requests"] == go_duration(reset).encode(), reset


async def test_runaway_agent_loop_trips_on_the_kth_identical_request(backend, clock, sink):
    session = SessionBreakerConfig(loop_repeat_k=4, loop_window_s=60, trip_seconds=300)
    engine = make(backend, clock, sink, breakers=BreakerConfig(session=session))
    for _ in range(3):
        await engine.admit(request(session="agent-run-1", fingerprint="same-prompt"))
        clock.advance(1)
    with pytest.raises(BreakerOpen, match="'loop'") as caught:
        await engine.admit(request(session="agent-run-1", fingerprint="same-prompt"))
    assert caught.value.details["breaker"] == "loop"
    # The session stays open for other requests too, until trip_seconds pass.
    with pytest.raises(BreakerOpen, match="'loop'"):
        await engine.admit(request(session="agent-run-1", fingerprint="different"))
    await engine.admit(request(session="agent-run-2", fingerprint="same-prompt"))
    assert breaker_events(sink) == [("loop", "open")]
    clock.advance(300)
    await engine.admit(request(session="agent-run-1", fingerprint="different"))


async def test_repeats_spread_beyond_the_window_are_not_a_loop(backend, clock, sink):
    session = SessionBreakerConfig(loop_repeat_k=2, loop_window_s=10)
    engine = make(backend, clock, sink, breakers=BreakerConfig(session=session))
    for _ in range(3):
        await engine.admit(request(session="s", fingerprint="poll-status"))
        clock.advance(11)


async def test_max_steps_stops_a_session(backend, clock, sink):
    session = SessionBreakerConfig(max_steps=5)
    engine = make(backend, clock, sink, breakers=BreakerConfig(session=session))
    for step in range(5):
        await engine.admit(request(session="s", fingerprint=f"step-{step}"))
    for _ in range(2):
        with pytest.raises(BreakerOpen, match="max_steps"):
            await engine.admit(request(session="s"))
    assert breaker_events(sink) == [("max_steps", "open")]
    await engine.admit(request(session="other"))


async def test_max_spend_caps_a_session_without_overshoot(backend, clock, sink):
    session = SessionBreakerConfig(max_spend_usd=Decimal("0.05"))
    engine = make(backend, clock, sink, breakers=BreakerConfig(session=session))
    admissions = [await engine.admit(request(cost="0.02", session="s")) for _ in range(2)]
    with pytest.raises(BreakerOpen, match="max_spend") as caught:
        await engine.admit(request(cost="0.02", session="s"))
    assert caught.value.details["breaker"] == "max_spend"
    await engine.admit(request(cost="0.01", session="s"))  # what is left still fits
    for admission in admissions:
        await engine.settle(admission, Decimal("0.02"), 10)
    assert breaker_events(sink) == [("max_spend", "open")]


async def test_velocity_breaker_opens_cools_down_probes_and_closes(backend, clock, sink):
    velocity = VelocityBreakerConfig(usd_per_minute=Decimal("1"), cooldown_s=30)
    engine = make(backend, clock, sink, breakers=BreakerConfig(velocity=velocity))
    for _ in range(3):  # $1.20 in a few seconds: faster than $1 / minute
        admission = await engine.admit(request(cost="0.40"))
        await engine.settle(admission, Decimal("0.40"), 10)
        clock.advance(1)
    with pytest.raises(BreakerOpen, match="velocity") as caught:
        await engine.admit(request())
    assert caught.value.headers["retry-after"] == "30"
    clock.advance(29)
    with pytest.raises(BreakerOpen):
        await engine.admit(request())
    clock.advance(2)
    probe = await engine.admit(request(cost="0.05"))  # half-open: one probe goes through
    assert probe.probe
    with pytest.raises(BreakerOpen, match="probe"):
        await engine.admit(request())
    await engine.settle(probe, Decimal("0.05"), 10)
    closed = await engine.admit(request())
    assert not closed.probe
    assert breaker_events(sink) == [
        ("velocity", "open"),
        ("velocity", "half_open"),
        ("velocity", "closed"),
    ]


async def test_velocity_breaker_reopens_when_the_probe_spends_too_fast(backend, clock, sink):
    velocity = VelocityBreakerConfig(usd_per_minute=Decimal("1"), cooldown_s=30)
    engine = make(backend, clock, sink, breakers=BreakerConfig(velocity=velocity))
    runaway = await engine.admit(request(cost="2"))
    await engine.settle(runaway, Decimal("2"), 10)
    with pytest.raises(BreakerOpen):
        await engine.admit(request())
    clock.advance(30)
    probe = await engine.admit(request(cost="1.5"))
    await engine.settle(probe, Decimal("1.5"), 10)
    with pytest.raises(BreakerOpen, match="velocity"):
        await engine.admit(request())
    assert breaker_events(sink) == [
        ("velocity", "open"),
        ("velocity", "half_open"),
        ("velocity", "open"),
    ]


async def test_a_released_probe_lets_the_next_request_probe(backend, clock, sink):
    velocity = VelocityBreakerConfig(usd_per_minute=Decimal("1"), cooldown_s=30)
    engine = make(backend, clock, sink, breakers=BreakerConfig(velocity=velocity))
    runaway = await engine.admit(request(cost="2"))
    await engine.settle(runaway, Decimal("2"), 10)
    clock.advance(1)
    with pytest.raises(BreakerOpen):
        await engine.admit(request())
    clock.advance(30)
    probe = await engine.admit(request())
    await engine.release(probe)  # e.g. the upstream was unreachable
    assert (await engine.admit(request())).probe


async def test_a_long_session_of_distinct_requests_keeps_bounded_loop_state(clock, sink):
    backend = MemoryStateBackend()
    session = SessionBreakerConfig(loop_repeat_k=3, loop_window_s=60)
    engine = make(backend, clock, sink, breakers=BreakerConfig(session=session))
    for step in range(2_000):  # one distinct request a second for over half an hour
        await engine.admit(request(session="forever", fingerprint=f"step-{step}"))
        clock.advance(1)
    # White-box: only fingerprints seen inside the loop window are remembered.
    (state,) = backend._sessions.values()
    assert len(state.fingerprints) <= 61
    # ... and a loop is still caught.
    for _ in range(2):
        await engine.admit(request(session="forever", fingerprint="again"))
    with pytest.raises(BreakerOpen, match="'loop'"):
        await engine.admit(request(session="forever", fingerprint="again"))
