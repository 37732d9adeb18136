"""Circuit breakers: per agent session (steps, spend, loops) and per key (spend velocity).

A session is the ``session`` tag (else the ``agent`` tag) within the calling key, so two
tenants choosing the same session id never share limits. Session spend is an ordinary capped
counter reserved with the budgets, so it cannot overshoot either. A tripped session stays
refused for ``trip_seconds``; the velocity breaker goes open → (cooldown) → half-open →
closed or open again, judged by the spend its probe requests cause.
"""

from __future__ import annotations

import math

from costwarden.errors import BreakerOpen
from costwarden.policy.budgets import escape
from costwarden.policy.config import SessionBreakerConfig, VelocityBreakerConfig
from costwarden.policy.events import BREAKER_NAMES
from costwarden.records import Principal, Tags
from costwarden.state.base import AdmissionOutcome, Refusal, SessionCheck, VelocityCheck


def session_subject(principal: Principal, tags: Tags) -> str | None:
    session = tags.session or tags.agent
    if session is None:
        return None
    return f"session:{escape(principal.key_id)}:{escape(session)}"


def session_check(config: SessionBreakerConfig, subject: str | None) -> SessionCheck | None:
    if subject is None or (config.max_steps is None and config.loop_repeat_k is None):
        return None
    return SessionCheck(
        key=subject,
        max_steps=config.max_steps,
        loop_repeat_k=config.loop_repeat_k,
        loop_window_s=config.loop_window_s,
        trip_seconds=config.trip_seconds,
        idle_ttl_s=config.idle_ttl_s,
    )


def velocity_subject(principal: Principal) -> str:
    return f"velocity:key={escape(principal.key_id)}"


def velocity_check(config: VelocityBreakerConfig, principal: Principal) -> VelocityCheck | None:
    if config.usd_per_minute is None:
        return None
    return VelocityCheck(
        key=velocity_subject(principal),
        usd_per_minute=config.usd_per_minute,
        cooldown_s=config.cooldown_s,
        probe_requests=config.probe_requests,
    )


def breaker_name(outcome: AdmissionOutcome) -> str:
    if outcome.refusal is Refusal.SESSION_OPEN:
        return outcome.trip_reason or "session"
    if outcome.refusal is Refusal.BUDGET:  # the session's spend counter refused
        return "max_spend"
    return BREAKER_NAMES.get(outcome.refusal, "breaker") if outcome.refusal else "breaker"


_EXPLANATIONS = {
    "loop": "the same request was repeated too often inside the loop window (agent loop?)",
    "max_steps": "the session reached its maximum number of steps",
    "max_spend": "the session reached its maximum spend",
    "velocity": "spend on this key rose faster than the allowed dollars per minute",
}


def breaker_open(outcome: AdmissionOutcome, subject: str, limit: str | None = None) -> BreakerOpen:
    name = breaker_name(outcome)
    why = _EXPLANATIONS.get(name, "a circuit breaker is open")
    if outcome.refusal is Refusal.PROBE_BUSY:
        why = "the velocity breaker is half-open and its probe request is still running"
    message = f"circuit breaker {name!r} open for {subject}: {why}"
    if limit is not None:
        message += f" (limit {limit})"
    headers = {"x-should-retry": "false"}
    details: dict[str, object] = {"breaker": name, "subject": subject}
    if outcome.retry_after_s is not None:
        wait = max(1, math.ceil(outcome.retry_after_s))
        headers["retry-after"] = str(wait)
        details["retry_after_s"] = wait
        message += f"; retry in {wait}s"
    return BreakerOpen(message, headers=headers, details=details)
