"""The spend-control engine the gateway calls around every upstream request.

    resolution = engine.resolve_model(requested, tags.env)        # pins, env map, allowed list
    admission = await engine.admit(AdmissionRequest(...))         # raises a PolicyRejection
    ... upstream call, bounded by admission.max_output_tokens ...
    await engine.settle(admission, cost, tokens)  # or engine.release(admission) if never sent
    engine.check_reported_model(resolution, reported_model)

``admit`` compiles the configuration into one ``AdmissionPlan`` (budgets, session spend, rate
buckets, breakers) and hands it to the state backend, which checks and reserves all of it in
one atomic step. The parts that depend only on the caller and model are compiled once and
cached (``plans.PlanCache``, ``plans.SessionPartsCache``). The engine itself holds no counters,
so any number of replicas can share one backend.

A request may come with a cheap upper bound of its prompt and a ``refine`` callback for the
exact count: the bound is tried first (tentatively), and only a budget or rate refusal of it
costs the exact count and a second try. ``admit_many`` / ``settle_many`` do the same for many
requests in one backend step (one round trip on Redis), for the gateway's batching.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple
from zoneinfo import ZoneInfo

from costwarden.errors import PolicyRejection
from costwarden.policy import budgets, pinning
from costwarden.policy.breakers import (
    velocity_subject,
)
from costwarden.policy.budget_status import (
    BudgetStatus,
    EffectiveBudget,
    budget_status,
    effective_budgets,
    runtime_rules,
)
from costwarden.policy.budgets import BudgetScope
from costwarden.policy.config import BudgetRule, PolicyConfig
from costwarden.policy.events import BreakerEvent, EventSink, LoggingEventSink
from costwarden.policy.pinning import ModelResolution
from costwarden.policy.plans import (
    DEFAULT_MAX_ENTRIES,
    CompiledRequest,
    PlanCache,
    SessionPartsCache,
)
from costwarden.policy.ratelimit import rate_limit_header_pairs
from costwarden.policy.refusals import refusal_error
from costwarden.records import Principal, Tags
from costwarden.state.base import (
    MAX_UNITS,
    AdmissionOutcome,
    AdmissionPlan,
    BreakerTransition,
    LocalStateBackend,
    Refusal,
    SettleOutcome,
    StateBackend,
    units_to_usd,
)

Clock = Callable[[], float]  # epoch seconds; time.time in production, injected in tests
# Refusals that a smaller token count could turn into an admission (a budget, the session's
# spend, a token bucket — or a request bucket, harmlessly retried: it refuses again).
_TOKEN_BOUND_REFUSALS = (Refusal.BUDGET, Refusal.RATE)
# The cap of a reservation no limit may refuse: the most a counter holds exactly.
_UNCAPPED = units_to_usd(MAX_UNITS - 1)


@dataclass(slots=True)  # not frozen: built per request (see state.base)
class AdmissionRequest:
    principal: Principal
    tags: Tags
    model: str  # the resolved model (ModelResolution.model)
    estimated_input_tokens: int
    max_output_tokens: int | None  # None: the policy's default bound is reserved and must be set
    # Price of input + bounded output in counter units (1e-8 USD, ``state.base.usd_to_units_up``
    # of the USD amount), reserved on every budget: integers on the hot path, as in the counters.
    worst_case_units: int
    fingerprint: str | None = None  # normalised request hash, for loop detection
    now: float | None = None  # epoch seconds; default: the engine's clock
    # When set, ``estimated_input_tokens`` / ``worst_case_units`` are a cheap upper bound, and
    # this gives the exact (input tokens, worst-case units): asked only if a limit refuses the
    # bound, so that near a limit the reservation is as tight as an exact count makes it.
    refine: Callable[[], tuple[int, int]] | None = None


@dataclass(slots=True)  # not frozen: built per request (see state.base)
class Admission:
    lease_id: str
    model: str
    key_id: str
    reserved_units: int  # counter units (1e-8 USD)
    reserved_tokens: int
    max_output_tokens: int  # the bound the upstream call must carry
    expires_at: float
    header_pairs: tuple[tuple[bytes, bytes], ...]  # x-ratelimit-* for the client response
    budgets: tuple[BudgetScope, ...]
    probe: bool  # a half-open probe of the velocity breaker
    # Counter key -> budget, for the budgets with soft thresholds (settlement reports
    # crossings); shared with the compiled plan, never modified.
    watched: Mapping[str, BudgetScope] = field(default_factory=dict)

    @property
    def reserved_usd(self) -> Decimal:
        return units_to_usd(self.reserved_units)

    @property
    def headers(self) -> dict[str, str]:
        """``header_pairs`` as text."""
        return {name.decode(): value.decode() for name, value in self.header_pairs}


class _Pending(NamedTuple):
    """An admission on its way: the request, what was compiled for it, its output bound and
    the plan the backend is asked to admit (a tuple: one is built per request)."""

    ctx: AdmissionRequest
    compiled: CompiledRequest
    max_output: int
    plan: AdmissionPlan


class PolicyEngine:
    def __init__(
        self,
        config: PolicyConfig,
        state: StateBackend,
        clock: Clock = time.time,
        *,
        events: EventSink | None = None,
        lease_seconds: float = 120.0,
        plan_cache_size: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._config = config
        self._state = state
        self._local = state if isinstance(state, LocalStateBackend) else None
        self._clock = clock
        self._events: EventSink = events or LoggingEventSink()
        self._lease_seconds = lease_seconds
        self._tz = ZoneInfo(config.timezone)
        self._periods = budgets.PeriodCache(self._tz)
        self._config_budgets = config.all_budgets()
        self._runtime_budgets: tuple[BudgetRule, ...] = ()
        self._effective = effective_budgets(self._config_budgets, ())
        self._budget_rules = tuple(b.rule for b in self._effective)  # what admission reads
        self._plan_cache_size = plan_cache_size
        self._plans = self._new_plan_cache()
        self._sessions = SessionPartsCache(config.breakers.session, plan_cache_size)
        # Lease ids: a random prefix per engine and a counter. As unique across replicas
        # sharing a backend as uuid4 (96 random bits), at a fraction of its cost.
        self._lease_prefix = secrets.token_hex(12)
        self._lease_numbers = itertools.count(1)

    @property
    def config(self) -> PolicyConfig:
        return self._config

    @property
    def local(self) -> bool:
        """The backend is in this process: ``admit_now`` / ``settle_many_now`` may be used."""
        return self._local is not None

    @property
    def has_controls(self) -> bool:
        """False when no budget, rate limit or breaker applies to anything: the gateway then
        skips admission (and its state round trip) altogether."""
        breakers = self._config.breakers
        session = breakers.session
        return bool(
            self._budget_rules
            or self._config.rate_limits
            or session.max_steps
            or session.max_spend_usd
            or session.loop_repeat_k
            or breakers.velocity.usd_per_minute
        )

    @property
    def runtime_budgets(self) -> tuple[BudgetRule, ...]:
        return self._runtime_budgets

    @property
    def budgets(self) -> tuple[EffectiveBudget, ...]:
        """The rules admission applies now, each with where it comes from."""
        return self._effective

    def set_runtime_budgets(self, rules: Sequence[BudgetRule]) -> None:
        """Replace the budgets managed at run time (named; a name shared with a config rule
        replaces that rule). Cheap, and safe to call from a refresher task: the new set is
        built first and swapped in with no ``await`` in between, so an admission sees the old
        set or the new one, never a mix. Counters are keyed by scope and period, not by rule,
        so changing a limit keeps what was already spent against it."""
        runtime = runtime_rules(rules)
        effective = effective_budgets(self._config_budgets, runtime)
        self._runtime_budgets = runtime
        self._effective = effective
        self._budget_rules = tuple(b.rule for b in effective)
        self._plans = self._new_plan_cache()  # compiled from the old rules: start afresh

    async def budget_status(
        self, values: Mapping[str, str] | None = None, now: float | None = None
    ) -> list[BudgetStatus]:
        """Spent / reserved / remaining of each effective budget for these dimension values
        (e.g. ``{"user": "alice"}``); see ``budget_status.budget_status``."""
        at = self._clock() if now is None else now
        return await budget_status(self._state, self._effective, values or {}, at, self._tz)

    def resolve_model(self, requested: str, env: str | None) -> ModelResolution:
        return pinning.resolve_model(self._config, requested, env)

    def check_reported_model(self, resolution: ModelResolution, reported_model: str | None) -> bool:
        """False (and a PinEvent) when upstream served another version than the pinned one."""
        event = pinning.pin_mismatch(resolution, reported_model, self._clock())
        if event is None:
            return True
        self._events.emit(event)
        return False

    async def admit(self, ctx: AdmissionRequest) -> Admission:
        """Reserve ``ctx``'s worst case on everything that applies; raises the refusal."""
        pending = self._prepare(ctx)
        outcome = await self._state.admit(pending.plan)
        if outcome.transition is not None:
            self._report_velocity(outcome.transition, pending)
        if not outcome.admitted and self._refine(pending, outcome):
            outcome = await self._state.admit(pending.plan)
            if outcome.transition is not None:
                self._report_velocity(outcome.transition, pending)
        return self._conclude(pending, outcome)

    async def admit_spent(self, ctx: AdmissionRequest) -> Admission:
        """Reserve ``ctx``'s worst case on its budget counters without checking any limit,
        for a request that was sent already and cannot be stopped (a provider batch taken over
        from a dead batch worker). Its settlement then charges what it cost to every counter,
        so the counters keep seeing spend that a cap could not prevent."""
        pending = self._prepare(ctx)
        plan = pending.plan
        plan.scopes = tuple(dataclasses.replace(scope, cap=_UNCAPPED) for scope in plan.scopes)
        plan.rates, plan.session, plan.velocity, plan.tentative = (), None, None, False
        return self._conclude(pending, await self._state.admit(plan))

    def admit_now(self, ctx: AdmissionRequest) -> Admission:
        """``admit`` on a backend in this process (``local``), with no coroutine around it."""
        state = self._local
        if state is None:
            raise TypeError("admit_now needs a backend in this process; await admit instead")
        pending = self._prepare(ctx)
        outcome = state.admit_now(pending.plan)
        if outcome.transition is not None:
            self._report_velocity(outcome.transition, pending)
        if not outcome.admitted and self._refine(pending, outcome):
            outcome = state.admit_now(pending.plan)
            if outcome.transition is not None:
                self._report_velocity(outcome.transition, pending)
        return self._conclude(pending, outcome)

    async def admit_many(
        self,
        requests: Sequence[AdmissionRequest],
        settlements: Sequence[tuple[Admission, Decimal | None, int | None]] = (),
    ) -> list[Admission | PolicyRejection]:
        """``admit`` for each, in order, in one backend step (one round trip on Redis; a
        refused bound is retried exactly in a second one): each its admission or refusal.
        ``settlements`` (as for ``settle_many``) are settled first, in the same step."""
        pending = [self._prepare(ctx) for ctx in requests]
        plans = [p.plan for p in pending]
        if settlements:
            now = self._clock()
            settled, outcomes = await self._state.settle_and_admit(
                [(a.lease_id, cost, tokens) for a, cost, tokens in settlements], now, plans
            )
            self._settled(settlements, settled, now)
        else:
            outcomes = await self._state.admit_many(plans)
        retry = []
        for index, (item, outcome) in enumerate(zip(pending, outcomes, strict=True)):
            if outcome.transition is not None:
                self._report_velocity(outcome.transition, item)
            if not outcome.admitted and self._refine(item, outcome):
                retry.append(index)
        if retry:
            again = await self._state.admit_many([pending[i].plan for i in retry])
            for index, outcome in zip(retry, again, strict=True):
                if outcome.transition is not None:
                    self._report_velocity(outcome.transition, pending[index])
                outcomes[index] = outcome
        results: list[Admission | PolicyRejection] = []
        for item, outcome in zip(pending, outcomes, strict=True):
            try:
                results.append(self._conclude(item, outcome))
            except PolicyRejection as refusal:
                results.append(refusal)
        return results

    def _prepare(self, ctx: AdmissionRequest) -> _Pending:
        if not 0 <= ctx.worst_case_units < MAX_UNITS:
            raise ValueError(f"worst_case_units out of range: {ctx.worst_case_units}")
        now = ctx.now if ctx.now is not None else self._clock()
        compiled = self._plans.compiled(ctx.principal, ctx.tags, ctx.model, now)
        scopes = compiled.counters
        check = None
        session = self._sessions.parts(ctx.principal, ctx.tags, now)
        if session is not None:
            if session.spend is not None:
                scopes = (*scopes, session.spend)
            check = session.check
        max_output = ctx.max_output_tokens or self._config.default_max_output_tokens
        plan = AdmissionPlan(
            f"{self._lease_prefix}{next(self._lease_numbers):x}",
            now,
            now + self._lease_seconds,
            ctx.worst_case_units,
            scopes,
            compiled.rates,
            check,
            compiled.velocity,
            ctx.refine is not None,  # tentative: a bound, retried exactly if refused
            ctx.fingerprint if check is not None else None,
            ctx.estimated_input_tokens + max_output,
        )
        return _Pending(ctx, compiled, max_output, plan)

    @staticmethod
    def _refine(pending: _Pending, outcome: AdmissionOutcome) -> bool:
        """True (and the plan re-made with the exact count) when a bound was refused."""
        refine = pending.ctx.refine
        if refine is None or outcome.refusal not in _TOKEN_BOUND_REFUSALS:
            return False
        input_tokens, units = refine()  # the bound was refused: try the exact count
        plan = pending.plan
        plan.tokens = input_tokens + pending.max_output
        plan.amount_units = units
        plan.tentative = False
        return True

    def _conclude(self, pending: _Pending, outcome: AdmissionOutcome) -> Admission:
        ctx, compiled, max_output, plan = pending
        if not outcome.admitted:
            raise refusal_error(
                outcome,
                self._config,
                self._events,
                compiled.budgets,
                plan.now,
                model=ctx.model,
                fingerprint=ctx.fingerprint,
                tokens=plan.tokens,
                amount=plan.amount,
            )
        return Admission(
            plan.lease_id,
            ctx.model,
            ctx.principal.key_id,
            plan.amount_units,
            plan.tokens,
            max_output,
            plan.expires_at,
            rate_limit_header_pairs(outcome.rates) if outcome.rates else (),
            compiled.budgets,
            outcome.probe,
            compiled.watched,
        )

    async def settle(
        self, admission: Admission, actual_cost: Decimal | None, actual_tokens: int | None
    ) -> bool:
        """Replace the reservation by the actual cost (None: price unknown, keep the reserved
        amount, the conservative choice). False if the lease was already settled / released."""
        now = self._clock()
        outcome = await self._state.settle(admission.lease_id, actual_cost, actual_tokens, now)
        self._report_thresholds(admission, outcome, now)
        return outcome.applied

    async def settle_many(
        self, settlements: Sequence[tuple[Admission, Decimal | None, int | None]]
    ) -> list[bool]:
        """``settle`` for each, in one backend step (one round trip on Redis)."""
        now = self._clock()
        outcomes = await self._state.settle_many(
            [(a.lease_id, cost, tokens) for a, cost, tokens in settlements], now
        )
        return self._settled(settlements, outcomes, now)

    def settle_many_now(
        self, settlements: Sequence[tuple[Admission, Decimal | None, int | None]]
    ) -> list[bool]:
        """``settle_many`` on a backend in this process (``local``), synchronously."""
        state = self._local
        if state is None:
            raise TypeError("settle_many_now needs a backend in this process")
        now = self._clock()
        outcomes = state.settle_many_now(
            [(a.lease_id, cost, tokens) for a, cost, tokens in settlements], now
        )
        return self._settled(settlements, outcomes, now)

    def _settled(
        self,
        settlements: Sequence[tuple[Admission, Decimal | None, int | None]],
        outcomes: Sequence[SettleOutcome],
        now: float,
    ) -> list[bool]:
        for (admission, _, _), outcome in zip(settlements, outcomes, strict=True):
            self._report_thresholds(admission, outcome, now)
        return [outcome.applied for outcome in outcomes]

    def _report_thresholds(self, admission: Admission, outcome: SettleOutcome, now: float) -> None:
        watched = admission.watched
        if not watched:
            return  # no soft threshold to cross: nothing to report
        for settled in outcome.scopes:
            scope = watched.get(settled.key)
            # Thresholds are sorted: below the lowest one (the usual case) nothing is crossed.
            if scope is None or settled.spent_after_units * 100 < (
                settled.cap_units * scope.thresholds[0]
            ):
                continue
            for event in budgets.threshold_events(scope, settled, now):
                self._events.emit(event)

    async def release(self, admission: Admission) -> bool:
        """The request never reached upstream: return its reservation and estimated tokens."""
        return await self._state.release(admission.lease_id, self._clock())

    async def renew(self, admission: Admission) -> bool:
        """Keep a long-running request's reservation alive for another lease period."""
        now = self._clock()
        return await self._state.renew(admission.lease_id, now + self._lease_seconds, now)

    def _report_velocity(self, transition: BreakerTransition, pending: _Pending) -> None:
        """The velocity breaker changed state during this admission: an event."""
        details = {"usd_per_minute": str(self._config.breakers.velocity.usd_per_minute)}
        subject, now = velocity_subject(pending.ctx.principal), pending.plan.now
        self._events.emit(BreakerEvent("velocity", transition.value, subject, now, details))

    def _new_plan_cache(self) -> PlanCache:
        return PlanCache(self._config, self._budget_rules, self._periods, self._plan_cache_size)
