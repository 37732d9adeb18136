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
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis

from costwarden.state import redis_scripts
from costwarden.state.base import (
    FINISHED_LEASE_RETENTION_S,
    GCRA_SLACK_S,
    SWEEP_BATCH,
    VELOCITY_BUCKET_S,
    AdmissionOutcome,
    AdmissionPlan,
    ScopeKey,
    Settlement,
    SettleOutcome,
    units_to_usd,
    usd_to_units_up,
)
from costwarden.state.redis_connections import Script, ScriptConnections
from costwarden.state.redis_wire import Wire

# A loaded script: call with keys= and args=, as the scripts' connections run it.
_ScriptCall = Callable[..., Awaitable[Any]]


class RedisStateBackend:
    def __init__(self, client: Redis, key_prefix: str) -> None:
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

    @classmethod
    def from_url(cls, url: str, key_prefix: str, max_connections: int = 64) -> RedisStateBackend:
        # A blocking pool makes a burst wait for a free connection instead of failing.
        pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=10)
        return cls(Redis(connection_pool=pool), key_prefix)

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
        args: list[str | bytes] = [self._prefix, str(len(settlements))]
        clock = repr(now)
        for lease_id, actual, actual_tokens in settlements:
            args += (lease_id, *_settle_args(actual, actual_tokens), clock)
        args += [self._wire.plan(plan) for plan in plans]
        # One declared key (see above): a call's hundred keys would cost Python, the network
        # and Lua for nothing.
        reply = await self._step(keys=[self._leases], args=args)
        settled, admitted = cast("list[list[Any]]", reply)
        wire = self._wire
        return [wire.settlement(r) for r in settled], [wire.admission(r) for r in admitted]

    async def release(self, lease_id: str, now: float) -> bool:
        reply = await self._release(
            keys=[self._leases], args=[self._prefix, lease_id, repr(now)]
        )
        return int(cast("int", reply)) == 1

    async def renew(self, lease_id: str, expires_at: float, now: float) -> bool:
        reply = await self._renew(
            keys=[self._leases], args=[self._prefix, lease_id, repr(expires_at), repr(now)]
        )
        return int(cast("int", reply)) == 1

    async def sweep_expired(self, now: float) -> int:
        total = 0
        while True:
            swept = int(
                cast(
                    "int",
                    await self._sweep(
                        keys=[self._leases], args=[self._prefix, repr(now), SWEEP_BATCH]
                    ),
                )
            )
            total += swept
            if swept < SWEEP_BATCH:
                return total

    async def usage(self, key: str) -> tuple[Decimal, Decimal]:
        spent, reserved = await self._redis.hmget(self._prefix + key, ["s", "r"])
        return units_to_usd(int(spent or 0)), units_to_usd(int(reserved or 0))

    async def aclose(self) -> None:
        await self._scripts.aclose()
        await self._redis.aclose()


def _settle_args(actual: Decimal | None, actual_tokens: int | None) -> tuple[str, str]:
    return (
        "" if actual is None else str(usd_to_units_up(actual)),
        "" if actual_tokens is None else str(actual_tokens),
    )

