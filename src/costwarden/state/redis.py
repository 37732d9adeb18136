"""Redis counters shared by any number of gateway replicas.

One Lua script call per admission (budgets, rate limits and breakers together) and one per
settlement, so each costs one round trip and is atomic across replicas; the gateway batches
what arrives while a call is in flight, and a batch is still one call. Settlements and
admissions share one script (``STEP``: settlements first, then admissions), so the gateway
sends the settlements waiting when it sends a batch of admissions along in the same call
(``settle_and_admit``): on a small machine each call's network wake-ups cost more CPU, on
both sides, than the script. Scripts run by SHA on
connections of their own (``redis_connections``: redis-py's pool costs more CPU per call than
the rest of the call), loaded again if the server lost its script cache.
Expired leases (a replica died mid-request) are swept inside the admission script, so no
separate job is needed for correctness; ``sweep_expired`` exists for idle periods and tests.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any, Literal, cast

import orjson
from redis.asyncio import BlockingConnectionPool, Redis

from costwarden.state import redis_scripts
from costwarden.state.base import (
    FINISHED_LEASE_RETENTION_S,
    GCRA_SLACK_S,
    SWEEP_BATCH,
    VELOCITY_BUCKET_S,
    AdmissionOutcome,
    AdmissionPlan,
    BreakerTransition,
    RateState,
    Refusal,
    ScopeKey,
    ScopeSettlement,
    ScopeUsage,
    Settlement,
    SettleOutcome,
    units_to_usd,
    usd_to_units_up,
)
from costwarden.state.redis_connections import Script, ScriptConnections

# A loaded script: call with keys= and args=, as the scripts' connections run it.
_ScriptCall = Callable[..., Awaitable[Any]]


class RedisStateBackend:
    def __init__(self, client: Redis, key_prefix: str) -> None:
        self._redis = client
        self._prefix = "{" + key_prefix + "}:"

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
        keys: dict[str, None] = {self._key("leases"): None}  # each once, in order (Cluster)
        args: list[str | bytes] = [self._prefix, str(len(settlements))]
        clock = repr(now)
        for lease_id, actual, actual_tokens in settlements:
            keys[self._prefix + "lease:" + lease_id] = None
            args += (lease_id, *_settle_args(actual, actual_tokens), clock)
        for plan in plans:
            body, plan_keys = self._encode(plan)
            args.append(body)
            keys.update(dict.fromkeys(plan_keys))
        settled, admitted = cast("list[list[Any]]", await self._step(keys=list(keys), args=args))
        return (
            [self._decode_settlement(reply) for reply in settled],
            [self._decode_admission(reply) for reply in admitted],
        )

    def _decode_settlement(self, reply: list[Any]) -> SettleOutcome:
        if int(reply[0]) == 0:
            return SettleOutcome(applied=False)
        fields = [v.decode() if type(v) is bytes else str(v) for v in reply[1:]]
        scopes = tuple(
            ScopeSettlement(
                key=self._unprefix(fields[i]),
                cap_units=int(fields[i + 1]),
                spent_before_units=int(fields[i + 2]),
                spent_after_units=int(fields[i + 3]),
            )
            for i in range(0, len(fields), 4)
        )
        return SettleOutcome(applied=True, scopes=scopes)

    async def release(self, lease_id: str, now: float) -> bool:
        reply = await self._release(
            keys=[self._key("leases"), self._key("lease:" + lease_id)],
            args=[self._prefix, lease_id, repr(now)],
        )
        return int(cast("int", reply)) == 1

    async def renew(self, lease_id: str, expires_at: float, now: float) -> bool:
        reply = await self._renew(
            keys=[self._key("leases"), self._key("lease:" + lease_id)],
            args=[self._prefix, lease_id, repr(expires_at), repr(now)],
        )
        return int(cast("int", reply)) == 1

    async def sweep_expired(self, now: float) -> int:
        total = 0
        while True:
            swept = int(
                cast(
                    "int",
                    await self._sweep(
                        keys=[self._key("leases")], args=[self._prefix, repr(now), SWEEP_BATCH]
                    ),
                )
            )
            total += swept
            if swept < SWEEP_BATCH:
                return total

    async def usage(self, key: str) -> tuple[Decimal, Decimal]:
        spent, reserved = await self._redis.hmget(self._key(key), ["s", "r"])
        return units_to_usd(int(spent or 0)), units_to_usd(int(reserved or 0))

    async def aclose(self) -> None:
        await self._scripts.aclose()
        await self._redis.aclose()

    # -- encoding --------------------------------------------------------------------------

    def _key(self, name: str) -> str:
        return self._prefix + name

    def _unprefix(self, key: str) -> str:
        return key.removeprefix(self._prefix)

    def _encode(self, plan: AdmissionPlan) -> tuple[bytes, list[str]]:
        """The plan as JSON for the script, and every key it touches (declared for Cluster)."""
        doc: dict[str, Any] = {
            "lease": plan.lease_id,
            "now": plan.now,
            "exp": plan.expires_at,
            "amt": plan.amount_units,
            "tent": 1 if plan.tentative else 0,
            "scopes": [
                [self._key(s.key), s.cap_units, s.expires_at or 0, s.report_from_units]
                for s in plan.scopes
            ],
            "rates": [
                [self._key(r.key), r.kind, r.limit, r.charge(plan.tokens), r.window_s]
                for r in plan.rates
            ],
        }
        keys = [self._key("leases"), self._key("lease:" + plan.lease_id)]
        keys += [s[0] for s in doc["scopes"]] + [r[0] for r in doc["rates"]]
        if plan.session is not None:
            s = plan.session
            fingerprint = ""
            if plan.fingerprint is not None and s.loop_repeat_k is not None:
                fingerprint = self._key(f"{s.key}:fp:{plan.fingerprint}")
                keys.append(fingerprint)
            doc["sess"] = {
                "k": self._key(s.key),
                "max": s.max_steps or 0,
                "fp": fingerprint,
                "kk": s.loop_repeat_k or 0,
                "win": s.loop_window_s,
                "trip": s.trip_seconds,
                "ttl": s.idle_ttl_s,
            }
            keys.append(doc["sess"]["k"])
        if plan.velocity is not None:
            v = plan.velocity
            doc["vel"] = {
                "k": self._key(v.key),
                "thr": v.threshold_units,
                "cool": v.cooldown_s,
                "probes": v.probe_requests,
                "ttl": v.ttl_s,
            }
            keys.append(doc["vel"]["k"])
        return orjson.dumps(doc), keys

    def _decode_admission(self, reply: list[Any]) -> AdmissionOutcome:
        # Casts are strings and fields decoded inline: per request, a runtime ``Literal[...]``
        # and a call per field showed in the gateway's profile.
        f = [v.decode() if type(v) is bytes else str(v) for v in reply]
        rates = tuple(
            RateState(
                key=self._unprefix(f[i]),
                kind=cast("Literal['requests', 'tokens']", f[i + 1]),
                limit=int(f[i + 2]),
                remaining=int(f[i + 3]),
                reset_s=float(f[i + 4]),
            )
            for i in range(11, len(f), 5)
        )
        transition = BreakerTransition(f[10]) if f[10] else None
        if f[0] == "1":
            return AdmissionOutcome(
                admitted=True, probe=f[9] == "1", transition=transition, rates=rates
            )
        refusal = Refusal(f[1])
        key = self._unprefix(f[2])
        usage = None
        if refusal is Refusal.BUDGET:
            usage = ScopeUsage(
                key, units_to_usd(int(f[6])), units_to_usd(int(f[4])), units_to_usd(int(f[5]))
            )
        return AdmissionOutcome(
            admitted=False,
            refusal=refusal,
            refused_key=key,
            usage=usage,
            retry_after_s=float(f[3]) if f[3] else None,
            first_refusal=f[7] == "1",
            trip_reason=f[8] or None,
            transition=transition,
            rates=rates,
        )


def _settle_args(actual: Decimal | None, actual_tokens: int | None) -> tuple[str, str]:
    return (
        "" if actual is None else str(usd_to_units_up(actual)),
        "" if actual_tokens is None else str(actual_tokens),
    )

