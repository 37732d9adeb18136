"""What a refused admission raises, and the events its refusal reports.

The state backend answers an admission with an ``AdmissionOutcome``; when it refused, this
turns the outcome into the client's error — a rate limit (429 with ``Retry-After``), a budget
(naming it, what is left and when it resets) or an open breaker (session steps, loop, session
spend, spend velocity) — and emits the event of a budget's first refusal or a breaker's trip.
"""

from __future__ import annotations

from decimal import Decimal

from costwarden.errors import PolicyRejection
from costwarden.policy import budgets
from costwarden.policy.breakers import breaker_name, breaker_open
from costwarden.policy.budgets import BudgetScope
from costwarden.policy.config import PolicyConfig
from costwarden.policy.events import BreakerEvent, EventSink
from costwarden.policy.ratelimit import rate_limited
from costwarden.state.base import AdmissionOutcome, Refusal


def refusal_error(
    outcome: AdmissionOutcome,
    config: PolicyConfig,
    events: EventSink,
    applicable: tuple[BudgetScope, ...],
    now: float,
    *,
    model: str,
    fingerprint: str | None,
    tokens: int,
    amount: Decimal,
) -> PolicyRejection:
    """The error for the refusal in ``outcome`` (``applicable``: the request's budgets;
    ``tokens`` and ``amount``: what it asked to reserve)."""
    if outcome.refusal is Refusal.RATE:
        return rate_limited(outcome, tokens)
    if outcome.refusal is Refusal.BUDGET:
        scope = next((b for b in applicable if b.counter.key == outcome.refused_key), None)
        if scope is not None and outcome.usage is not None:
            if outcome.first_refusal:
                events.emit(budgets.exhausted_event(scope, outcome.usage, now))
            return budgets.budget_exceeded(scope, outcome.usage, amount, now)
    subject = outcome.refused_key or "request"
    limit = breaker_limit(config, outcome)
    if outcome.refusal in (Refusal.LOOP, Refusal.MAX_STEPS) or (
        outcome.refusal is Refusal.BUDGET and outcome.first_refusal
    ):
        details = {"fingerprint": fingerprint, "model": model, "limit": limit}
        events.emit(BreakerEvent(breaker_name(outcome), "open", subject, now, details))
    return breaker_open(outcome, subject, limit)


def breaker_limit(config: PolicyConfig, outcome: AdmissionOutcome) -> str | None:
    """The configured limit a breaker refusal reached, as the error states it."""
    session = config.breakers.session
    if outcome.refusal is Refusal.MAX_STEPS:
        return f"{session.max_steps} steps"
    if outcome.refusal is Refusal.LOOP:
        return f"{session.loop_repeat_k} repeats in {session.loop_window_s:g}s"
    if outcome.refusal is Refusal.BUDGET:
        return budgets.usd(session.max_spend_usd or Decimal(0))
    if outcome.refusal is Refusal.VELOCITY_OPEN:
        return f"{budgets.usd(config.breakers.velocity.usd_per_minute or Decimal(0))}/min"
    return None
