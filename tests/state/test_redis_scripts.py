"""The Redis scripts' own guarantees: batches of any size, lease bodies of earlier versions,
and settlements and admissions in one call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import msgpack
import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from costwarden.state.base import (
    AdmissionPlan,
    RateBucket,
    ScopeKey,
    SessionCheck,
    usd_to_units_up,
)
from costwarden.state.redis import RedisStateBackend
from costwarden.state.redis_wire import Wire

NOW = 1_795_000_000.0
CENT = usd_to_units_up(Decimal("0.01"))
CAP = ScopeKey("budget:global:day:x", Decimal(1), NOW + 86_400)


@pytest.fixture
async def redis_backend(redis_url: str, key_prefix: str) -> AsyncIterator[RedisStateBackend]:
    backend = RedisStateBackend.from_url(redis_url, key_prefix)
    yield backend
    await backend.aclose()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    raw = Redis.from_url(redis_url)
    yield raw
    await raw.aclose()


async def test_batches_larger_than_lua_can_unpack_at_once(redis_backend: RedisStateBackend):
    # Leases are added and deleted 500 at a time (Lua's unpack takes a few thousand values).
    backend = redis_backend
    cap = ScopeKey("budget:global:day:x", Decimal(100), NOW + 86_400)
    rpm = RateBucket("rate:key=k:requests", "requests", 10_000, 1)
    plans = [AdmissionPlan(f"l{i}", NOW, NOW + 120, CENT, (cap,), (rpm,)) for i in range(4500)]
    outcomes = await backend.admit_many(plans)
    assert all(o.admitted for o in outcomes)
    assert outcomes[-1].rates[0].remaining == 10_000 - 4500
    assert await backend.usage(cap.key) == (Decimal(0), Decimal(45))
    half = Decimal("0.005")
    settled = await backend.settle_many([(p.lease_id, half, None) for p in plans], NOW + 1)
    assert all(o.applied for o in settled)
    assert await backend.usage(cap.key) == (Decimal("22.5"), Decimal(0))
    assert await backend.sweep_expired(NOW + 10_000) == 0  # every lease left the set


async def test_a_lease_written_by_an_earlier_version_still_settles(
    redis_backend: RedisStateBackend, client: Redis, key_prefix: str
):
    # Before 2026-12 a lease body was a hash (st, p, pr); a rolling upgrade meets such leases.
    backend, key = redis_backend, f"{{{key_prefix}}}:lease:old"
    assert (await backend.admit(AdmissionPlan("old", NOW, NOW + 120, CENT, (CAP,)))).admitted
    body = await client.get(key)
    assert body is not None and body[:2] == b"r0"
    await client.delete(key)
    await client.hset(key, mapping={"st": "r", "p": body[2:], "pr": "0"})
    outcome = await backend.settle("old", Decimal("0.004"), None, NOW + 1)
    assert outcome.applied
    assert await backend.usage(CAP.key) == (Decimal("0.004"), Decimal(0))
    assert not await client.exists(key)


async def test_a_json_lease_body_of_an_earlier_version_still_settles(
    redis_backend: RedisStateBackend, client: Redis, key_prefix: str
):
    # Before 2026-12 plans travelled, and lease bodies kept them, as JSON.
    backend, key = redis_backend, f"{{{key_prefix}}}:lease:json"
    assert (await backend.admit(AdmissionPlan("json", NOW, NOW + 120, CENT, (CAP,)))).admitted
    body = msgpack.unpackb((await client.get(key))[2:])
    await client.set(key, b"r0" + orjson.dumps(body))
    assert (await backend.settle("json", Decimal("0.004"), None, NOW + 1)).applied
    assert await backend.usage(CAP.key) == (Decimal("0.004"), Decimal(0))


async def test_one_call_settles_first_then_admits(redis_backend: RedisStateBackend):
    backend = redis_backend
    cap = ScopeKey("budget:global:day:x", Decimal("0.01"), NOW + 86_400)
    assert (await backend.admit(AdmissionPlan("a", NOW, NOW + 120, CENT, (cap,)))).admitted
    # The cap is fully reserved: "b" fits only once "a" has settled at less.
    plan = AdmissionPlan("b", NOW + 1, NOW + 121, CENT // 2, (cap,))
    half = Decimal("0.005")
    settled, admitted = await backend.settle_and_admit([("a", half, None)], NOW + 1, [plan])
    assert settled[0].applied
    assert admitted[0].admitted
    assert await backend.usage(cap.key) == (half, half)


async def test_a_call_that_fails_writes_nothing(
    redis_backend: RedisStateBackend, client: Redis, key_prefix: str
):
    # Every write waits for the end of the script: a call that fails halfway (here its second
    # plan cannot be unpacked) leaves no lease without its reservation, no reservation without
    # its lease, no sighting, no rate charge.
    backend = redis_backend
    rpm = RateBucket("rate:key=k:requests", "requests", 100, 1)
    session = SessionCheck("session:k:s", 10, 3, 60.0, 30.0, 3600.0)
    plan = AdmissionPlan("ok", NOW, NOW + 120, CENT, (CAP,), (rpm,), session, fingerprint="f")
    good = Wire(backend.prefix).plan(plan)
    epoch = backend.prefix + "epoch"
    await client.set(epoch, "1")  # the counters are seeded (else the script answers 'lost')
    with pytest.raises(ResponseError):
        await backend._step(
            keys=[backend.prefix + "leases"], args=[backend.prefix, "0", good, b"{"]
        )
    keys = [k async for k in client.scan_iter(match="{" + key_prefix + "}*")]
    assert keys in ([epoch], [epoch.encode()])
    assert (await backend.admit(plan)).admitted  # and the same plan alone goes through
    assert await backend.usage(CAP.key) == (Decimal(0), Decimal("0.01"))
