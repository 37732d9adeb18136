"""The counter-backend interface and the plain data that crosses it.

An admission is one ``AdmissionPlan``: every capped counter, rate bucket and breaker check a
request touches. A backend evaluates the whole plan in ONE atomic step (a section without
``await`` in process, one Lua script in Redis): if every check passes it applies every change
and records a lease; otherwise it applies nothing (except breaker trips, which are the point of
a refusal) and says what refused.

Money inside backends is integer micro-cents (1 unit = 1e-8 USD). Reservations and spend are
rounded UP and caps DOWN, so rounding can only make the cap check stricter, never let spend
pass a cap. Integers stay exact in Lua doubles below 2**53 units (~$90M per counter).

The types built anew for every request (plans, rate buckets charged with a request's tokens,
session checks, outcomes, settlements) are plain slotted dataclasses, not frozen ones: a
frozen dataclass sets each field through ``object.__setattr__``, ~4× the cost (measured:
2.7 µs against 0.6 µs for an ``AdmissionPlan``), and a request builds a dozen of them. Nothing
mutates them once built. Those compiled once and cached (``ScopeKey``, ``VelocityCheck``) stay
frozen, since they are shared between requests.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal, Protocol, runtime_checkable

UNITS_PER_USD = 10**8
MAX_UNITS = 2**53
# An expired lease is remembered this long so that a settle arriving after it (a replica that
# lost its renewals for a while) still records the spend. Longer than the longest request
# (gateway.request_timeout_s defaults to 600 s), short enough that, at thousands of requests a
# second, remembered leases stay a bounded set (a day's worth would be hundreds of millions).
FINISHED_LEASE_RETENTION_S = 900.0
# At most this many expired leases are swept per admission, bounding the script's run time.
SWEEP_BATCH = 100
VELOCITY_BUCKET_S = 60.0
# Rate buckets admit up to this early, only to absorb float error in the GCRA arithmetic.
GCRA_SLACK_S = 0.001


def usd_to_units_up(amount: Decimal) -> int:
    """Reservation / spend amount in units, rounded up (conservative for the cap check)."""
    return _to_units(amount, ROUND_CEILING)


def usd_to_units_down(amount: Decimal) -> int:
    """Cap in units, rounded down (conservative for the cap check)."""
    return _to_units(amount, ROUND_FLOOR)


def _to_units(amount: Decimal, rounding: str) -> int:
    if amount < 0:
        raise ValueError(f"amount must not be negative: {amount}")
    units = int((amount * UNITS_PER_USD).to_integral_value(rounding=rounding))
    if units >= MAX_UNITS:
        raise ValueError(f"amount {amount} USD is above what counters hold exactly")
    return units


def units_to_usd(units: int) -> Decimal:
    return Decimal(units).scaleb(-8)


@dataclass(frozen=True, slots=True)
class ScopeKey:
    """A capped spend counter: a budget for one scope and period, or a session's spend."""

    key: str  # without the backend's prefix, e.g. "budget:team=ml:month:2026-11"
    cap: Decimal
    expires_at: float | None = None  # epoch s after which the counter may be forgotten
    # Percent of the cap from which a settlement must report the counter (a budget's lowest
    # soft threshold); 0: always, None: never. Below it a backend may leave the counter out of
    # SettleOutcome, which saves settling requests an object per counter.
    report_pct: int | None = 0
    # ``cap`` in units, rounded down: converted once here, not on every admission that checks it.
    cap_units: int = field(init=False, repr=False, compare=False)
    # Spend in units from which settlement reports the counter (``report_pct`` of the cap,
    # rounded up: spent * 100 >= cap * pct, exactly); above any possible spend when None.
    report_from_units: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cap_units = usd_to_units_down(self.cap)
        object.__setattr__(self, "cap_units", cap_units)
        pct = self.report_pct
        report_from = MAX_UNITS if pct is None else -(-cap_units * pct // 100)
        object.__setattr__(self, "report_from_units", report_from)


@dataclass(slots=True)
class RateBucket:
    """One GCRA bucket: ``limit`` units per ``window_s``, a full window of burst allowed.

    Compiled once per caller and shared by its requests: a token bucket's charge is the
    request's own (``cost=None``: ``AdmissionPlan.tokens``), so nothing is built per request.
    """

    key: str
    kind: Literal["requests", "tokens"]
    limit: int
    cost: int | None  # units this request takes (1, or tokens); None: the plan's tokens
    window_s: float = 60.0
    # Seconds one unit moves the bucket's TAT, and the slack that absorbs float error (1 ms,
    # or half an interval if shorter, so exactly ``limit`` unit requests fit in a burst).
    interval: float = field(init=False, repr=False, compare=False)
    slack: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.interval = self.window_s / self.limit
        self.slack = min(self.interval / 2, GCRA_SLACK_S)

    def charge(self, tokens: int) -> int:
        """What a request with ``tokens`` worst-case tokens takes from this bucket."""
        return tokens if self.cost is None else self.cost


@dataclass(frozen=True, slots=True)
class SessionCheck:
    """The session breaker's limits for one session (compiled once per session); the
    request's own fingerprint travels in ``AdmissionPlan.fingerprint``."""

    key: str
    max_steps: int | None
    loop_repeat_k: int | None
    loop_window_s: float
    trip_seconds: float
    idle_ttl_s: float


@dataclass(frozen=True, slots=True)
class VelocityCheck:
    key: str
    usd_per_minute: Decimal
    cooldown_s: float
    probe_requests: int
    threshold_units: int = field(init=False, repr=False, compare=False)  # usd_per_minute, up
    # How long an idle key's velocity state is kept: past any cooldown and both buckets.
    ttl_s: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "threshold_units", usd_to_units_up(self.usd_per_minute))
        object.__setattr__(self, "ttl_s", self.cooldown_s + 3 * VELOCITY_BUCKET_S)


@dataclass(slots=True)
class AdmissionPlan:
    lease_id: str
    now: float  # epoch seconds, from the engine's clock (injected in tests)
    expires_at: float  # lease expiry
    amount_units: int  # worst-case cost reserved on every scope (``usd_to_units_up``)
    scopes: tuple[ScopeKey, ...] = ()
    rates: tuple[RateBucket, ...] = ()
    session: SessionCheck | None = None
    velocity: VelocityCheck | None = None
    # A first try with a bounded (over-)estimate that the engine retries with an exact one
    # if a limit refuses it: its budget refusal is not remembered as reported.
    tentative: bool = False
    fingerprint: str | None = None  # the normalised request's hash, for loop detection
    tokens: int = 0  # worst-case tokens (input estimate + output bound): token buckets' charge

    @property
    def amount(self) -> Decimal:
        return units_to_usd(self.amount_units)


class Refusal(enum.StrEnum):
    BUDGET = "budget"  # a ScopeKey would go over its cap
    RATE = "rate"  # a rate bucket is empty
    SESSION_OPEN = "session_open"  # session was tripped earlier and is still refused
    LOOP = "loop"  # this request trips loop detection
    MAX_STEPS = "max_steps"  # this request trips the session's step limit
    VELOCITY_OPEN = "velocity_open"  # key's spend-velocity breaker is open
    PROBE_BUSY = "probe_busy"  # half-open, and the probe requests are already in flight


class BreakerTransition(enum.StrEnum):
    OPENED = "open"
    HALF_OPEN = "half_open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class ScopeUsage:
    key: str
    cap: Decimal
    spent: Decimal
    reserved: Decimal

    @property
    def remaining(self) -> Decimal:
        return max(Decimal(0), self.cap - self.spent - self.reserved)


@dataclass(slots=True)
class RateState:
    key: str
    kind: Literal["requests", "tokens"]
    limit: int
    remaining: int
    reset_s: float  # seconds until the bucket is full again


@dataclass(slots=True)
class AdmissionOutcome:
    admitted: bool
    refusal: Refusal | None = None
    refused_key: str | None = None
    usage: ScopeUsage | None = None  # the refused scope's counters (Refusal.BUDGET)
    retry_after_s: float | None = None  # None: waiting will not help (request over the limit)
    first_refusal: bool = False  # first BUDGET refusal of this counter: report it once
    trip_reason: str | None = None  # SESSION_OPEN: why the session was tripped
    probe: bool = False  # admitted as a half-open probe of the velocity breaker
    transition: BreakerTransition | None = None  # velocity breaker state change, if any
    rates: tuple[RateState, ...] = ()


@dataclass(slots=True)
class ScopeSettlement:
    """A counter before and after a settlement, in units: threshold checks compare integers,
    and the Decimal views below are built only for the rare event that reports them."""

    key: str
    cap_units: int
    spent_before_units: int
    spent_after_units: int

    @property
    def cap(self) -> Decimal:
        return units_to_usd(self.cap_units)

    @property
    def spent_before(self) -> Decimal:
        return units_to_usd(self.spent_before_units)

    @property
    def spent_after(self) -> Decimal:
        return units_to_usd(self.spent_after_units)


@dataclass(slots=True)
class SettleOutcome:
    applied: bool  # False: unknown lease, or already settled / released
    # The counters charged, or at least those whose spend reached ``report_from_units``.
    scopes: tuple[ScopeSettlement, ...] = ()


# (lease id, actual cost or None for the reserved amount, actual tokens or None): one request's
# settlement, for ``StateBackend.settle_many``.
Settlement = tuple[str, Decimal | None, int | None]


class StateBackend(Protocol):
    """Atomic counters shared by every replica that uses the same backend."""

    async def admit(self, plan: AdmissionPlan) -> AdmissionOutcome:
        """Check every part of ``plan``; all pass → reserve all and record the lease."""

    async def admit_many(self, plans: Sequence[AdmissionPlan]) -> list[AdmissionOutcome]:
        """``admit`` for each, in order, in one step (one round trip on Redis); each plan is
        still all-or-nothing on its own."""

    async def reserve(
        self,
        scopes: tuple[ScopeKey, ...],
        amount: Decimal,
        lease_id: str,
        expires_at: float,
        now: float,
    ) -> AdmissionOutcome:
        """Budget-only admission: reserve ``amount`` on every scope, or on none."""

    async def settle(
        self, lease_id: str, actual: Decimal | None, actual_tokens: int | None, now: float
    ) -> SettleOutcome:
        """Replace the reservation by ``actual`` spend (None: the reserved amount); idempotent.

        ``actual_tokens`` corrects the token buckets charged with the estimate."""

    async def settle_many(
        self, settlements: Sequence[Settlement], now: float
    ) -> list[SettleOutcome]:
        """``settle`` for each, in order, in one step (one round trip on Redis)."""

    async def settle_and_admit(
        self, settlements: Sequence[Settlement], now: float, plans: Sequence[AdmissionPlan]
    ) -> tuple[list[SettleOutcome], list[AdmissionOutcome]]:
        """``settle_many`` then ``admit_many``, in one step (one round trip on Redis)."""

    async def release(self, lease_id: str, now: float) -> bool:
        """Return the reservation and the estimated tokens (request never reached upstream)."""

    async def renew(self, lease_id: str, expires_at: float, now: float) -> bool:
        """Push a live lease's expiry out (a long stream); False if it is no longer live."""

    async def sweep_expired(self, now: float) -> int:
        """Return reservations of leases past expiry; how many leases were swept."""

    async def usage(self, key: str) -> tuple[Decimal, Decimal]:
        """(spent, reserved) of a spend counter, zeros when it does not exist."""

    async def aclose(self) -> None: ...


@runtime_checkable
class LocalStateBackend(StateBackend, Protocol):
    """A backend in this process, whose admissions and settlements never wait.

    The engine and the gateway call these directly instead of awaiting the coroutines above:
    in the live gateway each coroutine level of an admission cost ~1-2 µs of (cache-cold) CPU,
    and a settlement batch scheduled as a task more, for work that never suspends."""

    def admit_now(self, plan: AdmissionPlan) -> AdmissionOutcome:
        """``admit``, synchronously."""

    def settle_many_now(
        self, settlements: Sequence[Settlement], now: float
    ) -> list[SettleOutcome]:
        """``settle_many``, synchronously."""


ReserveResult = AdmissionOutcome  # what ``reserve`` returns: admitted, or which scope refused


@dataclass(frozen=True, slots=True)
class SeedCounter:
    """A budget counter's spend as the ledger knows it, for re-seeding."""

    key: str  # without the backend's prefix, as ``ScopeKey.key``
    spent_units: int
    expires_at: float | None  # when the counter may be forgotten (None: never)


# now (epoch s) -> every budget counter of the current periods with its spend in the ledger.
SeedSource = Callable[[float], Awaitable[Sequence[SeedCounter]]]
