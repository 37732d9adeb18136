"""Redis counters shared by any number of gateway replicas.

An admission (budgets, rate limits and breakers together) and a settlement each take part in
one Lua script call, so each costs at most one round trip and is atomic across replicas. One
script, ``STEP``, settles and then admits any number of each (``settle_and_admit``): the
gateway sends what arrives while a call is in flight together in the next call, settlements
along with admissions, since on a small machine each call's network wake-ups cost more CPU,
on both sides, than the script. Plans travel packed by ``redis_wire``. Scripts run by SHA on
connections of their own (``redis_connections``: redis-py's pool costs more CPU per call than
the rest of the call), loaded again if the server lost its script cache. Every call declares
one key, the leases set: every key shares its hash tag, so its cluster slot.
Expired leases (a replica died mid-request) are swept inside the admission call, so no
separate job is needed for correctness; ``sweep_expired`` exists for idle periods and tests.

Redis going away or losing its data is ``redis_recovery``'s concern: calls go through its
breaker (``_call``), a ``'lost'`` reply has the counters restored and re-seeded and the call
run again, and the backend keeps, for that, the packed plan of every lease it holds until it
is settled or released (``_live``: a dict entry per request in flight). Settlements that
cannot reach Redis are kept (``_unsent``) and go with the next call that can.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis

from costwarden.errors import CountersUnavailable
from costwarden.state import redis_recovery_scripts, redis_scripts
from costwarden.state.base import (
    FINISHED_LEASE_RETENTION_S,
    GCRA_SLACK_S,
    SWEEP_BATCH,
    VELOCITY_BUCKET_S,
    AdmissionOutcome,
    AdmissionPlan,
    ScopeKey,
    SeedSource,
    Settlement,
    SettleOutcome,
    units_to_usd,
    usd_to_units_up,
)
from costwarden.state.redis_connections import Script, ScriptConnections
from costwarden.state.redis_recovery import (
    DOWN_ERRORS,
    Breaker,
    LiveLease,
    Recovery,
    RecoveryConfig,
    unavailable,
)
from costwarden.state.redis_wire import Wire

log = logging.getLogger("costwarden.state")

# A loaded script: call with keys= and args=, as the scripts' connections run it.
_ScriptCall = Callable[..., Awaitable[Any]]


class RedisStateBackend:
    def __init__(
        self, client: Redis, key_prefix: str, recovery: RecoveryConfig | None = None
    ) -> None:
        self._redis = client
        self._prefix = "{" + key_prefix + "}:"
        self._leases = self._prefix + "leases"
        self._wire = Wire(self._prefix)

        pool = client.connection_pool
        self._scripts = ScriptConnections(pool.make_connection, pool.max_connections)

        def load(source: str) -> _ScriptCall:
            script = Script(
                redis_scripts.render(
                    source,
                    retention_s=math.ceil(FINISHED_LEASE_RETENTION_S),
                    bucket_s=int(VELOCITY_BUCKET_S),
                    sweep_batch=SWEEP_BATCH,
                    slack_s=GCRA_SLACK_S,
                )
            )
            return functools.partial(self._scripts.run, script)

        self._step = load(redis_scripts.STEP)
        self._release = load(redis_scripts.RELEASE)
        self._renew = load(redis_scripts.RENEW)
        self._sweep = load(redis_scripts.SWEEP)
        self._recovery_scripts = {
            name: load(getattr(redis_recovery_scripts, name.upper()))
            for name in ("restore", "seed", "claim", "unlock")
        }
        self._config = recovery or RecoveryConfig()
        self._breaker = Breaker(self._config.retry_base_s, self._config.retry_max_s)
        self._recovery = Recovery(self._named_call, self._prefix, self._config)
        self._live: dict[str, LiveLease] = {}  # lease id -> packed plan, expiry
        self._unsent: list[Settlement] = []

    @classmethod
    def from_url(
        cls,
        url: str,
        key_prefix: str,
        max_connections: int = 64,
        recovery: RecoveryConfig | None = None,
    ) -> RedisStateBackend:
        # A blocking pool makes a burst wait for a free connection instead of failing.
        pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=10)
        return cls(Redis(connection_pool=pool), key_prefix, recovery)

    def attach_seed_source(self, source: SeedSource) -> None:
        """Where budget counters are re-seeded from after Redis lost its data (the ledger)."""
        self._recovery.source = source

    async def ensure_seeded(self) -> None:
        """Have the counters seeded now if they have no epoch (a new deployment, or Redis
        lost its data while this replica was down), so that no request waits for it."""
        await self._recovery.recover(self._live, self._recovery.generation)

    @property
    def recovery(self) -> Recovery:
        return self._recovery

    @property
    def live_leases(self) -> int:
        """Leases this replica holds (admitted, not yet settled or released)."""
        return len(self._live)

    @property
    def prefix(self) -> str:
        """The ``{tag}:`` every key of this backend starts with."""
        return self._prefix

    async def admit(self, plan: AdmissionPlan) -> AdmissionOutcome:
        return (await self.admit_many((plan,)))[0]

    async def admit_many(self, plans: Sequence[AdmissionPlan]) -> list[AdmissionOutcome]:
        return (await self.settle_and_admit((), 0.0, plans))[1] if plans else []

    async def reserve(
        self,
        scopes: tuple[ScopeKey, ...],
        amount: Decimal,
        lease_id: str,
        expires_at: float,
        now: float,
    ) -> AdmissionOutcome:
        plan = AdmissionPlan(lease_id, now, expires_at, usd_to_units_up(amount), scopes)
        return await self.admit(plan)

    async def settle(
        self, lease_id: str, actual: Decimal | None, actual_tokens: int | None, now: float
    ) -> SettleOutcome:
        return (await self.settle_many(((lease_id, actual, actual_tokens),), now))[0]

    async def settle_many(
        self, settlements: Sequence[Settlement], now: float
    ) -> list[SettleOutcome]:
        return (await self.settle_and_admit(settlements, now, ()))[0] if settlements else []

    async def settle_and_admit(
        self, settlements: Sequence[Settlement], now: float, plans: Sequence[AdmissionPlan]
    ) -> tuple[list[SettleOutcome], list[AdmissionOutcome]]:
        kept = 0
        if self._unsent and not self._breaker.down:  # refused earlier: they go first
            kept = len(self._unsent)
            settlements, self._unsent = [*self._unsent, *settlements], []
        packed = [self._wire.plan(plan) for plan in plans]
        # Out of ``_live`` while their call runs: a recovery meanwhile must not restore a
        # lease that this very call may be settling (it would hold its budget until expiry).
        live = self._live
        settling = {
            lease_id: live.pop(lease_id) for lease_id, _, _ in settlements if lease_id in live
        }
        try:
            settled, admitted = await self._step_call(
                _step_args(self._prefix, settlements, now, packed)
            )
        except CountersUnavailable:
            live.update(settling)
            self._unsent.extend(settlements)
            if not plans or self._config.on_unavailable == "fail_closed":
                raise
            return self._admit_unchecked(len(settlements) - kept, plans, packed)
        wire = self._wire
        admissions: list[AdmissionOutcome] = []
        for plan, raw, reply in zip(plans, packed, admitted, strict=True):
            outcome = wire.admission(reply)
            if outcome.admitted:
                live[plan.lease_id] = (raw, plan.expires_at)
            admissions.append(outcome)
        outcomes: list[SettleOutcome] = []
        orphans: list[tuple[int, Settlement, LiveLease]] = []
        for settlement, reply in zip(settlements, settled, strict=True):
            entry = settling.pop(settlement[0], None)
            settled_one = wire.settlement(reply)
            if not settled_one.applied and entry is not None:
                orphans.append((len(outcomes), settlement, entry))
            outcomes.append(settled_one)
        if orphans:
            await self._settle_orphans(orphans, outcomes, now)
        return outcomes[kept:], admissions

    async def _step_call(self, args: list[str | bytes]) -> list[list[Any]]:
        """One ``STEP`` call; if the counters lost their data, recover and call again."""
        # One declared key (see above): a call's hundred keys would cost Python, the network
        # and Lua for nothing.
        seen = self._recovery.generation
        reply = await self._call(self._step, args)
        if type(reply) is bytes:  # b'lost': no epoch key
            await self._recovery.recover(self._live, seen)
            reply = await self._call(self._step, args)
            if type(reply) is bytes:
                raise unavailable("the budget counters (Redis) lost their data again; retry")
        return cast("list[list[Any]]", reply)

    def _admit_unchecked(
        self, settled: int, plans: Sequence[AdmissionPlan], packed: list[bytes]
    ) -> tuple[list[SettleOutcome], list[AdmissionOutcome]]:
        """``state.on_unavailable: fail_open``: admit without a check. The plans are kept as
        live leases, so their settlements (kept until Redis is back) charge the spend."""
        for plan, raw in zip(plans, packed, strict=True):
            self._live[plan.lease_id] = (raw, plan.expires_at)
        return [SettleOutcome(False)] * settled, [AdmissionOutcome(True) for _ in plans]

    async def _settle_orphans(
        self,
        orphans: list[tuple[int, Settlement, LiveLease]],
        outcomes: list[SettleOutcome],
        now: float,
    ) -> None:
        """Settle leases that Redis does not know although this replica holds them: lost with
        Redis's data (on a replica that made no call while the others re-seeded) or admitted
        unchecked (``fail_open``). Each is written back, then settled: its spend counts."""
        leases = {settlement[0]: entry for _, settlement, entry in orphans}
        settlements = [settlement for _, settlement, _ in orphans]
        try:
            await self._recovery.restore(leases)
            settled, _ = await self._step_call(_step_args(self._prefix, settlements, now, []))
        except CountersUnavailable:
            self._live.update(leases)
            self._unsent.extend(settlements)  # tried again with the next call
            return
        for (index, _, _), reply in zip(orphans, settled, strict=True):
            outcomes[index] = self._wire.settlement(reply)

    async def release(self, lease_id: str, now: float) -> bool:
        self._live.pop(lease_id, None)
        reply = await self._call(self._release, [self._prefix, lease_id, repr(now)])
        return int(cast("int", reply)) == 1

    async def renew(self, lease_id: str, expires_at: float, now: float) -> bool:
        entry = self._live.get(lease_id)
        if entry is not None:
            entry = self._live[lease_id] = (entry[0], expires_at)
        args = [self._prefix, lease_id, repr(expires_at), repr(now)]
        if int(cast("int", await self._call(self._renew, args))) == 1:
            return True
        # Lost with Redis's data and not restored yet (this replica made no other call).
        return entry is not None and await self._recovery.restore({lease_id: entry}) == 1

    async def sweep_expired(self, now: float) -> int:
        total = 0
        while True:
            reply = await self._call(self._sweep, [self._prefix, repr(now), SWEEP_BATCH])
            swept = int(cast("int", reply))
            total += swept
            if swept < SWEEP_BATCH:
                return total

    async def usage(self, key: str) -> tuple[Decimal, Decimal]:
        self._breaker.check()
        try:
            spent, reserved = await self._redis.hmget(self._prefix + key, ["s", "r"])
        except DOWN_ERRORS as exc:
            raise self._breaker.failed(exc) from exc
        return units_to_usd(int(spent or 0)), units_to_usd(int(reserved or 0))

    async def _call(self, script: _ScriptCall, args: list[Any]) -> Any:
        """A script call through the breaker: fails fast while Redis is known to be down."""
        self._breaker.check()
        try:
            reply = await script(keys=[self._leases], args=args)
        except DOWN_ERRORS as exc:
            raise self._breaker.failed(exc) from exc
        self._breaker.succeeded()
        return reply

    async def _named_call(self, name: str, args: list[Any]) -> Any:
        return await self._call(self._recovery_scripts[name], args)

    async def aclose(self) -> None:
        await self._scripts.aclose()
        await self._redis.aclose()


def _step_args(
    prefix: str, settlements: Sequence[Settlement], now: float, packed: list[bytes]
) -> list[str | bytes]:
    args: list[str | bytes] = [prefix, str(len(settlements))]
    clock = repr(now)
    for lease_id, actual, actual_tokens in settlements:
        args += (lease_id, *_settle_args(actual, actual_tokens), clock)
    args += packed
    return args


def _settle_args(actual: Decimal | None, actual_tokens: int | None) -> tuple[str, str]:
    return (
        "" if actual is None else str(usd_to_units_up(actual)),
        "" if actual_tokens is None else str(actual_tokens),
    )
