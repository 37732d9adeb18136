"""The parts of an admission plan that depend only on who asks for which model, compiled once.

Naming a request's budget counters (scope labels, calendar periods, caps in integer units),
rate buckets and velocity breaker costs tens of µs, and the answer is the same for every
request with the same key, user, team, feature, env and model until a budget period ends.
``PlanCache`` keeps the compiled parts per such combination:

- an entry is used only while every period window it was named for is current (checked
  against the request's ``now``, so a clock that jumps either way recompiles);
- the rules it was compiled from never change under it: the engine replaces the whole cache
  when the runtime budgets change;
- it holds at most ``max_entries``, and is emptied when full: cheaper on the hot path than
  tracking recency, and a working set that large recompiles at the old cost, no worse.

What varies per request (token charges, the session's checks, the lease) stays outside.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from costwarden.policy.breakers import session_check, session_subject, velocity_check
from costwarden.policy.budgets import BudgetScope, PeriodCache, compile_budgets
from costwarden.policy.config import BudgetRule, PolicyConfig, SessionBreakerConfig
from costwarden.policy.ratelimit import bucket_templates
from costwarden.records import Principal, Tags
from costwarden.state.base import RateBucket, ScopeKey, SessionCheck, VelocityCheck

DEFAULT_MAX_ENTRIES = 4096

# key id, user, team, feature, env, model: every dimension a budget or rate rule can name
DimensionValues = tuple[str, str | None, str | None, str | None, str | None, str]


@dataclass(frozen=True, slots=True)
class CompiledRequest:
    budgets: tuple[BudgetScope, ...]
    counters: tuple[ScopeKey, ...]  # each budget's counter, in the same order
    watched: Mapping[str, BudgetScope]  # counter key -> its budget, those with thresholds
    rates: tuple[RateBucket, ...]  # token buckets charge each plan's tokens
    velocity: VelocityCheck | None
    valid_from: float
    valid_until: float

    @property
    def thresholds(self) -> bool:
        """Any budget has soft thresholds (settlement must look for crossings)."""
        return bool(self.watched)


def dimension_values(principal: Principal, tags: Tags, model: str) -> DimensionValues:
    return (principal.key_id, principal.user, principal.team, tags.feature, tags.env, model)


class PlanCache:
    def __init__(
        self,
        config: PolicyConfig,
        budget_rules: tuple[BudgetRule, ...],
        periods: PeriodCache,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._config = config
        self._budget_rules = budget_rules
        self._periods = periods
        self._max_entries = max_entries
        self._entries: dict[DimensionValues, CompiledRequest] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def compiled(self, principal: Principal, tags: Tags, model: str, now: float) -> CompiledRequest:
        values = dimension_values(principal, tags, model)
        entry = self._entries.get(values)
        if entry is not None and entry.valid_from <= now < entry.valid_until:
            return entry
        entry = self._compile(values, principal, now)
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[values] = entry
        return entry

    def _compile(
        self, values: DimensionValues, principal: Principal, now: float
    ) -> CompiledRequest:
        key_id, user, team, feature, env, model = values
        dimensions: dict[str, str | None] = {
            "team": team,
            "user": user,
            "key": key_id,
            "feature": feature,
            "env": env,
            "model": model,
        }
        budgets = compile_budgets(self._budget_rules, dimensions, now, self._periods)
        rates = bucket_templates(self._config.rate_limits, dimensions)
        return CompiledRequest(
            budgets=budgets.scopes,
            counters=tuple(b.counter for b in budgets.scopes),
            watched={b.counter.key: b for b in budgets.scopes if b.thresholds},
            rates=rates,
            velocity=velocity_check(self._config.breakers.velocity, principal),
            valid_from=budgets.valid_from,
            valid_until=budgets.valid_until,
        )


@dataclass(frozen=True, slots=True)
class SessionParts:
    """What the session breaker needs of one agent session, whatever the request."""

    subject: str  # "session:<key>:<session>", the key of its steps / loop state
    check: SessionCheck | None  # its step and loop limits, when any is set
    spend: ScopeKey | None  # its capped spend counter, when max_spend_usd is set
    spend_expires_at: float  # the counter's expiry (+inf without one)


class SessionPartsCache:
    """``SessionParts`` per (key, session), so that a request does not re-escape ids and
    re-convert the spend cap (a frozen ``ScopeKey`` with a Decimal cap: ~3 µs) every step.

    The spend counter expires ``idle_ttl_s`` after a session's last request. A cached entry
    carries an expiry up to ``slack`` further out and is rebuilt once ``now + idle_ttl_s``
    passes it, so the counter lives between ``idle_ttl_s`` and ``idle_ttl_s + slack`` after
    the last request: never less than configured (the cap is never forgotten early). Emptied
    when full, like ``PlanCache``.
    """

    def __init__(self, config: SessionBreakerConfig, max_entries: int = DEFAULT_MAX_ENTRIES):
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._config = config
        self._ttl = config.idle_ttl_s
        self._slack = min(60.0, config.idle_ttl_s / 100)
        self._max_entries = max_entries
        self._entries: dict[tuple[str, str], SessionParts] = {}

    def parts(self, principal: Principal, tags: Tags, now: float) -> SessionParts | None:
        session = tags.session or tags.agent
        if session is None:
            return None
        key = (principal.key_id, session)
        entry = self._entries.get(key)
        if entry is not None and entry.spend_expires_at >= now + self._ttl:
            return entry
        subject = session_subject(principal, tags)
        assert subject is not None  # a session tag is set
        cap = self._config.max_spend_usd
        spend, expires_at = None, math.inf
        if cap is not None:
            expires_at = now + self._ttl + self._slack
            spend = ScopeKey(f"{subject}:spend", cap, expires_at, report_pct=None)
        entry = SessionParts(subject, session_check(self._config, subject), spend, expires_at)
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[key] = entry
        return entry
