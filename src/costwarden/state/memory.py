"""In-process counters: the embedded default for one replica.

Atomicity comes from asyncio: every public method does all its work synchronously, with no
``await`` inside, so no other task can interleave between the checks and the updates. The
backend must therefore be used from one event loop thread. Semantics match the Redis backend
line for line (both run the same test suite).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from costwarden.state.base import (
    FINISHED_LEASE_RETENTION_S,
    SWEEP_BATCH,
    AdmissionOutcome,
    AdmissionPlan,
    BreakerTransition,
    RateState,
    Refusal,
    ScopeKey,
    ScopeSettlement,
    ScopeUsage,
    SeedCounter,
    SessionCheck,
    Settlement,
    SettleOutcome,
    VelocityCheck,
    units_to_usd,
    usd_to_units_up,
)
from costwarden.state.memory_rates import rate_refusal, rate_state
from costwarden.state.memory_sessions import (
    Session,
    record_fingerprint,
    repeats_to_loop,
    trip,
)
from costwarden.state.memory_velocity import VelocityState, check_velocity

# A rate bucket is kept this long past its TAT, as the Redis backend's key TTL does. Without
# it a bucket used below its limit (TAT about now) came due at every admission, costing a heap
# pop and push per bucket per request.
_RATE_KEEP_S = 1.0


@dataclass(slots=True)
class _Counter:
    spent: int = 0
    reserved: int = 0
    refused: bool = False  # a BUDGET refusal was already reported for this counter
    expires_at: float | None = None


@dataclass(slots=True)
class _Lease:
    plan: AdmissionPlan  # its scopes carry their caps in units; rates, velocity: what to correct
    units: int
    probe: bool
    expires_at: float
    state: Literal["reserved", "expired", "done"] = "reserved"


class MemoryStateBackend:
    def __init__(self) -> None:
        self._counters: dict[str, _Counter] = {}
        self._tats: dict[str, float] = {}
        self._sessions: dict[str, Session] = {}
        self._velocity: dict[str, VelocityState] = {}
        self._leases: dict[str, _Lease] = {}
        # (time, kind, key) entries; stale ones (object renewed or gone) are skipped on pop.
        self._expiry_heap: list[tuple[float, str, str]] = []
        # Lease id -> first expiry, in admission order with non-decreasing expiries (every
        # lease gets now + the same lease period). A settled lease leaves it at once, where
        # a heap entry would stay for a whole lease period: at thousands of requests a
        # second that was ~10^5 dead entries. Leases out of order go on the heap.
        self._lease_due: OrderedDict[str, float] = OrderedDict()
        self._last_lease_due = float("-inf")

    async def admit(self, plan: AdmissionPlan) -> AdmissionOutcome:
        return self.admit_now(plan)

    def seed(self, counters: Sequence[SeedCounter]) -> None:
        """Raise each budget counter to at least the spend the ledger knows. In-process counters
        start empty when the gateway starts; the period's spend does not, so without this a
        restart would hand every budget its whole cap again."""
        for seeded in counters:
            counter = self._counters.get(seeded.key)
            if counter is None:
                counter = self._counters[seeded.key] = _Counter(expires_at=seeded.expires_at)
                if seeded.expires_at is not None:
                    self._expire_later(seeded.expires_at, "counter", seeded.key)
            counter.spent = max(counter.spent, seeded.spent_units)

    async def admit_many(self, plans: Sequence[AdmissionPlan]) -> list[AdmissionOutcome]:
        return [self.admit_now(plan) for plan in plans]

    async def reserve(
        self,
        scopes: tuple[ScopeKey, ...],
        amount: Decimal,
        lease_id: str,
        expires_at: float,
        now: float,
    ) -> AdmissionOutcome:
        plan = AdmissionPlan(lease_id, now, expires_at, usd_to_units_up(amount), scopes)
        return self.admit_now(plan)

    async def settle(
        self, lease_id: str, actual: Decimal | None, actual_tokens: int | None, now: float
    ) -> SettleOutcome:
        return self._settle(lease_id, actual, actual_tokens, now)

    async def settle_many(
        self, settlements: Sequence[Settlement], now: float
    ) -> list[SettleOutcome]:
        return self.settle_many_now(settlements, now)

    def settle_many_now(
        self, settlements: Sequence[Settlement], now: float
    ) -> list[SettleOutcome]:
        return [self._settle(lease, actual, tokens, now) for lease, actual, tokens in settlements]

    async def settle_and_admit(
        self, settlements: Sequence[Settlement], now: float, plans: Sequence[AdmissionPlan]
    ) -> tuple[list[SettleOutcome], list[AdmissionOutcome]]:
        settled = self.settle_many_now(settlements, now)
        return settled, [self.admit_now(plan) for plan in plans]

    def _settle(
        self, lease_id: str, actual: Decimal | None, actual_tokens: int | None, now: float
    ) -> SettleOutcome:
        lease = self._leases.get(lease_id)
        if lease is None or lease.state == "done":
            return SettleOutcome(applied=False)
        units = lease.units if actual is None else usd_to_units_up(actual)
        was_reserved = lease.state == "reserved"
        unreserve = lease.units if was_reserved else 0
        settled = []
        counters = self._counters
        for scope in lease.plan.scopes:
            counter = counters.get(scope.key)
            if counter is None:  # counter's retention passed; nothing left to charge
                continue
            before = counter.spent
            reserved = counter.reserved - unreserve
            counter.reserved = reserved if reserved > 0 else 0
            counter.spent = spent = before + units
            if spent >= scope.report_from_units:  # below every threshold: nothing to report
                settled.append(ScopeSettlement(scope.key, scope.cap_units, before, spent))
        plan = lease.plan
        if actual_tokens is not None and plan.rates:
            self._correct_tokens(plan, actual_tokens)
        vcheck = plan.velocity
        velocity = None if vcheck is None else self._velocity.get(vcheck.key)
        if velocity is not None and vcheck is not None:
            velocity.add(units, now)
            velocity.expires_at = now + vcheck.ttl_s
            if lease.probe and was_reserved:
                velocity.probes_inflight = max(0, velocity.probes_inflight - 1)
                velocity.probes_done += 1
        self._finish(lease, now)
        return SettleOutcome(applied=True, scopes=tuple(settled))

    async def release(self, lease_id: str, now: float) -> bool:
        lease = self._leases.get(lease_id)
        if lease is None or lease.state == "done":
            return False
        if lease.state == "reserved":
            self._unreserve(lease)
            self._correct_tokens(lease.plan, 0)
        self._finish(lease, now)
        return True

    async def renew(self, lease_id: str, expires_at: float, now: float) -> bool:
        lease = self._leases.get(lease_id)
        if lease is None or lease.state != "reserved":
            return False
        lease.expires_at = expires_at  # its heap entry re-schedules itself when it comes up
        return True

    async def sweep_expired(self, now: float) -> int:
        return self._sweep(now, limit=None)

    async def usage(self, key: str) -> tuple[Decimal, Decimal]:
        counter = self._counters.get(key)
        if counter is None:
            return Decimal(0), Decimal(0)
        return units_to_usd(counter.spent), units_to_usd(counter.reserved)

    async def aclose(self) -> None:
        return None

    # -- admission -------------------------------------------------------------------------

    def admit_now(self, plan: AdmissionPlan) -> AdmissionOutcome:
        # The hot path of every controlled request. The live gateway runs it cold (everything
        # else a request does evicts its code and data from the CPU caches), where every
        # function entered costs several times its warm price: so the usual case (nothing
        # due, no breaker near tripping, every limit far off) runs in this function and three
        # more, and only refusals, trips and first sightings take further helpers.
        now = plan.now
        heap, leases_due = self._expiry_heap, self._lease_due
        if (heap and heap[0][0] <= now) or (leases_due and next(iter(leases_due.values())) <= now):
            self._sweep(now, limit=SWEEP_BATCH)
        check = plan.session
        session = None if check is None else self._sessions.get(check.key)
        # A known session can refuse only when tripped, at its step limit or seeing a
        # fingerprint again (a possible loop); otherwise its breaker's checks are skipped.
        if session is not None and check is not None and (
            session.tripped_until > now
            or (check.max_steps is not None and session.steps >= check.max_steps)
            or plan.fingerprint in session.fingerprints
        ):
            refused = _check_session(session, check, plan)
            if refused is not None:
                return refused
        transition: BreakerTransition | None = None
        probe = False
        velocity, vcheck = None, plan.velocity
        if vcheck is not None:
            velocity = self._velocity.get(vcheck.key)
            if velocity is None or not velocity.quiet(vcheck.threshold_units):
                velocity, transition, refused, probe = self._velocity_gate(vcheck, now)
                if refused is not None:
                    return refused
            velocity.expires_at = now + vcheck.ttl_s
        outcome = self._reserve(plan, session, probe=probe)
        if outcome.admitted:
            outcome.transition = transition
            if probe and velocity is not None:
                velocity.probes_inflight += 1
        return outcome

    def _velocity_gate(
        self, check: VelocityCheck, now: float
    ) -> tuple[VelocityState, BreakerTransition | None, AdmissionOutcome | None, bool]:
        """The key's velocity state (created if new) and its breaker's verdict: (state,
        transition, refusal or None, admit as probe). Only when it is not quiet."""
        velocity = self._keep_velocity(check, now)
        if velocity.quiet(check.threshold_units):
            return velocity, None, None, False
        transition, refused, probe = check_velocity(velocity, check, now)
        return velocity, transition, refused, probe

    def _reserve(
        self, plan: AdmissionPlan, session: Session | None, *, probe: bool
    ) -> AdmissionOutcome:
        """Check every rate bucket (GCRA, see ``memory_rates``) and spend counter, then move
        them all (``_apply``); or refuse at the first that the request does not fit in."""
        now, tats, tokens = plan.now, self._tats, plan.tokens
        new_tats: list[float] = []
        for bucket in plan.rates:
            cost = tokens if bucket.cost is None else bucket.cost
            tat = tats.get(bucket.key, now)
            new_tat = (tat if tat > now else now) + cost * bucket.interval
            over_s = (new_tat - now) - bucket.window_s - bucket.slack
            if over_s > 0:
                return rate_refusal(bucket, cost, tat, over_s, now)
            new_tats.append(new_tat)
        # Each counter is looked up once, for the check and the reservation (None: new).
        units, counters = plan.amount_units, self._counters
        found: list[_Counter | None] = []
        for scope in plan.scopes:
            counter = counters.get(scope.key)
            used = 0 if counter is None else counter.spent + counter.reserved
            if used + units > scope.cap_units:
                return self._budget_refusal(plan, scope)
            found.append(counter)
        states = self._apply(plan, found, new_tats, session, probe=probe)
        return AdmissionOutcome(admitted=True, probe=probe, rates=states)

    def _budget_refusal(self, plan: AdmissionPlan, scope: ScopeKey) -> AdmissionOutcome:
        counter = self._keep_counter(scope)
        first = not counter.refused
        if not plan.tentative:
            counter.refused = True
        return AdmissionOutcome(
            admitted=False,
            refusal=Refusal.BUDGET,
            refused_key=scope.key,
            usage=ScopeUsage(
                scope.key,
                units_to_usd(scope.cap_units),
                units_to_usd(counter.spent),
                units_to_usd(counter.reserved),
            ),
            first_refusal=first,
        )

    def _apply(
        self,
        plan: AdmissionPlan,
        found: list[_Counter | None],
        new_tats: list[float],
        session: Session | None,
        *,
        probe: bool,
    ) -> tuple[RateState, ...]:
        """Reserve, move the buckets, count the session's step and hold the lease; the
        buckets' states after this request (for its rate-limit headers)."""
        now, units = plan.now, plan.amount_units
        for scope, known in zip(plan.scopes, found, strict=True):
            # A known counter whose expiry already covers the scope's (the usual case) needs
            # nothing but the reservation; everything else goes through _keep_counter.
            counter = known
            if counter is None or (
                scope.expires_at is not None
                and (counter.expires_at is None or scope.expires_at > counter.expires_at)
            ):
                counter = self._keep_counter(scope)
            counter.reserved += units
        tats = self._tats
        states = []
        for bucket, new_tat in zip(plan.rates, new_tats, strict=True):
            if bucket.key not in tats:
                self._expire_later(new_tat + _RATE_KEEP_S, "rate", bucket.key)
            tats[bucket.key] = new_tat
            states.append(rate_state(bucket, new_tat, now))
        check = plan.session
        if check is not None:
            if session is None:
                session = self._new_session(check, now)
            session.steps += 1
            session.expires_at = now + check.idle_ttl_s
            if plan.fingerprint is not None and check.loop_repeat_k is not None:
                record_fingerprint(session, plan.fingerprint, now, check.loop_window_s)
        self._leases[plan.lease_id] = _Lease(plan, units, probe, plan.expires_at)
        if plan.expires_at >= self._last_lease_due:
            self._lease_due[plan.lease_id] = self._last_lease_due = plan.expires_at
        else:
            self._expire_later(plan.expires_at, "lease", plan.lease_id)
        return tuple(states)

    def _keep_counter(self, scope: ScopeKey) -> _Counter:
        """The scope's counter, created if new, its expiry pushed out to the scope's."""
        counter = self._counters.get(scope.key)
        expires_at = scope.expires_at
        if counter is None:
            counter = self._counters[scope.key] = _Counter(expires_at=expires_at)
            if expires_at is not None:
                self._expire_later(expires_at, "counter", scope.key)
        elif expires_at is not None:
            if counter.expires_at is None:
                self._expire_later(expires_at, "counter", scope.key)
                counter.expires_at = expires_at
            elif expires_at > counter.expires_at:
                counter.expires_at = expires_at  # its heap entry re-schedules itself
        return counter

    def _keep_velocity(self, check: VelocityCheck, now: float) -> VelocityState:
        """The key's velocity state, created if new, kept for another ``ttl_s``."""
        velocity = self._velocity.get(check.key)
        if velocity is None:
            velocity = self._velocity[check.key] = VelocityState()
            self._expire_later(now + check.ttl_s, "velocity", check.key)
        velocity.expires_at = now + check.ttl_s
        return velocity

    def _new_session(self, check: SessionCheck, now: float) -> Session:
        session = self._sessions[check.key] = Session()
        self._expire_later(now + check.idle_ttl_s, "session", check.key)
        return session

    # -- settlement helpers ----------------------------------------------------------------

    def _correct_tokens(self, plan: AdmissionPlan, actual_tokens: int) -> None:
        """Move each token bucket by what the request really took minus what it was charged."""
        tats = self._tats
        for bucket in plan.rates:
            tat = tats.get(bucket.key) if bucket.kind == "tokens" else None
            if tat is not None:  # None: a request bucket, or one forgotten since
                charged = plan.tokens if bucket.cost is None else bucket.cost
                tats[bucket.key] = tat + (actual_tokens - charged) * bucket.interval

    def _unreserve(self, lease: _Lease) -> None:
        for scope in lease.plan.scopes:
            counter = self._counters.get(scope.key)
            if counter is not None:
                counter.reserved = max(0, counter.reserved - lease.units)
        check = lease.plan.velocity
        velocity = self._velocity.get(check.key) if check else None
        if velocity is not None and lease.probe:
            velocity.probes_inflight = max(0, velocity.probes_inflight - 1)

    def _finish(self, lease: _Lease, now: float) -> None:
        # Forgetting a settled lease at once is as idempotent as remembering it (settle and
        # release of an unknown lease are no-ops), and keeps memory flat under load.
        lease.state = "done"
        del self._leases[lease.plan.lease_id]
        self._lease_due.pop(lease.plan.lease_id, None)

    # -- expiry ----------------------------------------------------------------------------

    def _expire_later(self, at: float, kind: str, key: str) -> None:
        heapq.heappush(self._expiry_heap, (at, kind, key))

    def _pop_due(self, now: float) -> tuple[str, str] | None:
        """The earliest (kind, key) due by ``now``, taken off its schedule; None if none."""
        heap, leases = self._expiry_heap, self._lease_due
        lease = next(iter(leases.items())) if leases else None
        if heap and heap[0][0] <= now and (lease is None or heap[0][0] <= lease[1]):
            _, kind, key = heapq.heappop(heap)
            return kind, key
        if lease is not None and lease[1] <= now:
            del leases[lease[0]]
            return "lease", lease[0]
        return None

    def _sweep(self, now: float, limit: int | None) -> int:
        """Expire leases (returning their reservations) and forget stale state."""
        swept = 0
        while limit is None or swept < limit:
            due = self._pop_due(now)
            if due is None:
                break
            kind, key = due
            if kind == "lease":
                swept += self._expire_lease(key, now)
            else:
                self._forget(kind, key, now)
        return swept

    def _expire_lease(self, lease_id: str, now: float) -> int:
        lease = self._leases.get(lease_id)
        if lease is None:
            return 0
        if lease.expires_at > now:  # renewed, or finished later than first scheduled
            self._expire_later(lease.expires_at, "lease", lease_id)
            return 0
        if lease.state == "reserved":
            self._unreserve(lease)
            lease.state = "expired"
            lease.expires_at = now + FINISHED_LEASE_RETENTION_S
            self._expire_later(lease.expires_at, "lease", lease_id)
            return 1
        del self._leases[lease_id]
        return 0

    def _forget(self, kind: str, key: str, now: float) -> None:
        """Drop an object whose expiry passed, or re-schedule it if it was extended since."""
        expires_at = self._expiry_of(kind, key)
        if expires_at is None:
            return
        if expires_at > now:
            self._expire_later(expires_at, kind, key)
            return
        if kind == "counter":
            del self._counters[key]
        elif kind == "rate":
            del self._tats[key]
        elif kind == "session":
            del self._sessions[key]
        else:
            del self._velocity[key]

    def _expiry_of(self, kind: str, key: str) -> float | None:
        if kind == "counter":
            counter = self._counters.get(key)
            return counter.expires_at if counter is not None else None
        if kind == "rate":
            tat = self._tats.get(key)
            return None if tat is None else tat + _RATE_KEEP_S
        if kind == "session":
            session = self._sessions.get(key)
            return session.expires_at if session is not None else None
        velocity = self._velocity.get(key)
        return velocity.expires_at if velocity is not None else None


def _check_session(
    session: Session, check: SessionCheck, plan: AdmissionPlan
) -> AdmissionOutcome | None:
    """The refusal of a known session's breaker (tripped, or tripping now), or None."""
    if session.tripped_until > plan.now:
        return AdmissionOutcome(
            admitted=False,
            refusal=Refusal.SESSION_OPEN,
            refused_key=check.key,
            retry_after_s=session.tripped_until - plan.now,
            trip_reason=session.trip_reason,
        )
    if check.max_steps is not None and session.steps >= check.max_steps:
        return trip(session, check, Refusal.MAX_STEPS, plan.now)
    if repeats_to_loop(session, check, plan.fingerprint, plan.now):
        return trip(session, check, Refusal.LOOP, plan.now)
    return None
