"""Refused admissions → the client's error and the trip events (``policy.refusals``)."""

from __future__ import annotations

from decimal import Decimal

from costwarden.errors import BreakerOpen
from costwarden.policy.config import PolicyConfig
from costwarden.policy.events import BreakerEvent, MemoryEventSink
from costwarden.policy.refusals import breaker_limit, refusal_error
from costwarden.state.base import AdmissionOutcome, Refusal

CONFIG = PolicyConfig.model_validate(
    {
        "breakers": {
            "session": {
                "max_steps": 40,
                "loop_repeat_k": 3,
                "loop_window_s": 90,
                "max_spend_usd": "2.5",
            },
            "velocity": {"usd_per_minute": "12"},
        }
    }
)


def refused(reason: Refusal, **fields: object) -> AdmissionOutcome:
    return AdmissionOutcome(admitted=False, refusal=reason, refused_key="session:k:s", **fields)  # type: ignore[arg-type]


def test_each_breaker_states_the_limit_it_reached() -> None:
    assert breaker_limit(CONFIG, refused(Refusal.MAX_STEPS)) == "40 steps"
    assert breaker_limit(CONFIG, refused(Refusal.LOOP)) == "3 repeats in 90s"
    assert breaker_limit(CONFIG, refused(Refusal.BUDGET)) == "$2.50"
    assert breaker_limit(CONFIG, refused(Refusal.VELOCITY_OPEN)) == "$12.00/min"
    assert breaker_limit(CONFIG, refused(Refusal.SESSION_OPEN)) is None


def test_a_loop_trip_is_an_error_naming_the_breaker_and_an_open_event() -> None:
    sink = MemoryEventSink()
    error = refusal_error(
        refused(Refusal.LOOP, retry_after_s=300.0, trip_reason="loop"),
        CONFIG,
        sink,
        (),
        1_795_000_000.0,
        model="gpt-4o",
        fingerprint="ab12",
        tokens=500,
        amount=Decimal("0.01"),
    )
    assert isinstance(error, BreakerOpen)
    (event,) = sink.events
    assert isinstance(event, BreakerEvent)
    assert (event.breaker, event.state, event.subject) == ("loop", "open", "session:k:s")
    assert event.details == {"fingerprint": "ab12", "model": "gpt-4o", "limit": "3 repeats in 90s"}
