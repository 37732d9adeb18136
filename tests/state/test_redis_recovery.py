"""The Redis backend when Redis goes away or loses its data, on a redis-server of each test's
own (killed and restarted empty; the shared one is never touched)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from costwarden.errors import CountersUnavailable
from costwarden.state.base import AdmissionPlan, ScopeKey, SeedCounter, usd_to_units_up
from costwarden.state.redis import RedisStateBackend
from costwarden.state.redis_recovery import RecoveryConfig
from tests.support.private_redis import PrivateRedis, private_redis

NOW = time.time()
CAP = ScopeKey("budget:global:day:x", Decimal("1"), NOW + 86_400)
CENT = usd_to_units_up(Decimal("0.01"))
FAST = RecoveryConfig(reseed_grace_s=0.05, retry_base_s=0.05, retry_max_s=0.2)


def plan(lease: str) -> AdmissionPlan:
    return AdmissionPlan(lease, NOW, NOW + 120, CENT, (CAP,))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    with private_redis(tmp_path) as redis:
        yield redis


@pytest.fixture
async def backend(server: PrivateRedis) -> AsyncIterator[RedisStateBackend]:
    state = RedisStateBackend.from_url(server.url, "cw", recovery=FAST)
    yield state
    await state.aclose()


async def _until_up(backend: RedisStateBackend, lease: str) -> bool:
    """Admit ``lease`` as soon as the breaker lets a call through again."""
    for _ in range(100):
        try:
            return (await backend.admit(plan(lease))).admitted
        except CountersUnavailable:
            await asyncio.sleep(0.05)
    raise AssertionError("Redis never came back")


async def test_down_redis_fails_fast_with_a_503_and_recovers(
    server: PrivateRedis, backend: RedisStateBackend
) -> None:
    assert (await backend.admit(plan("a"))).admitted
    server.stop()
    with pytest.raises(CountersUnavailable) as first:
        await backend.admit(plan("b"))
    assert first.value.status == 503 and first.value.code == "counters_unavailable"
    assert first.value.headers["x-should-retry"] == "true"
    started = time.perf_counter()
    with pytest.raises(CountersUnavailable):  # the breaker is open: no connection attempt
        await backend.admit(plan("c"))
    assert time.perf_counter() - started < 0.01
    server.start()
    assert await _until_up(backend, "d")


async def test_a_settlement_refused_while_down_is_applied_after_an_empty_restart(
    server: PrivateRedis, backend: RedisStateBackend
) -> None:
    assert (await backend.admit(plan("a"))).admitted
    server.stop()
    with pytest.raises(CountersUnavailable):
        await backend.settle("a", Decimal("0.004"), None, NOW + 1)
    server.start()  # empty: lease "a" and its reservation are gone
    assert await _until_up(backend, "b")
    # "a" was restored from this replica's own record of it, then settled at its cost.
    assert await backend.usage(CAP.key) == (Decimal("0.004"), Decimal("0.01"))


async def test_fail_open_admits_unchecked_and_charges_the_spend_later(
    server: PrivateRedis,
) -> None:
    config = RecoveryConfig(on_unavailable="fail_open", reseed_grace_s=0, retry_base_s=0.05)
    backend = RedisStateBackend.from_url(server.url, "cw", recovery=config)
    try:
        assert (await backend.admit(plan("a"))).admitted
        server.stop()
        assert (await backend.admit(plan("open"))).admitted  # unchecked
        with pytest.raises(CountersUnavailable):
            await backend.settle("open", Decimal("0.003"), None, NOW + 1)
        server.start()
        await asyncio.sleep(0.25)  # past the breaker's retry time
        assert (await backend.settle("a", Decimal("0.002"), None, NOW + 2)).applied
        spent, reserved = await backend.usage(CAP.key)
        assert (spent, reserved) == (Decimal("0.005"), Decimal(0))
    finally:
        await backend.aclose()


async def test_lost_counters_are_seeded_once_across_replicas(server: PrivateRedis) -> None:
    seeded = SeedCounter(CAP.key, usd_to_units_up(Decimal("0.95")), CAP.expires_at)
    reads = 0

    async def source(now: float) -> list[SeedCounter]:
        nonlocal reads
        reads += 1
        return [seeded]

    replicas = [RedisStateBackend.from_url(server.url, "cw", recovery=FAST) for _ in range(4)]
    for replica in replicas:
        replica.attach_seed_source(source)
    try:
        # Every replica's first call finds no epoch; one of them seeds, the others wait.
        outcomes = await asyncio.gather(
            *(r.admit(plan(f"r{i}-{n}")) for i, r in enumerate(replicas) for n in range(5))
        )
        assert reads == 1
        assert sum(r.recovery.reseeds for r in replicas) == 1
        # $0.95 of $1 was spent before: exactly five more cents fit, whoever asks.
        assert sum(o.admitted for o in outcomes) == 5
        assert await replicas[0].usage(CAP.key) == (Decimal("0.95"), Decimal("0.05"))
    finally:
        for replica in replicas:
            await replica.aclose()


async def test_reseed_keeps_a_higher_count_and_restores_leases_in_flight(
    server: PrivateRedis, backend: RedisStateBackend
) -> None:
    async def source(now: float) -> list[SeedCounter]:
        return [SeedCounter(CAP.key, usd_to_units_up(Decimal("0.5")), CAP.expires_at)]

    backend.attach_seed_source(source)
    assert (await backend.admit(plan("held"))).admitted  # seeds $0.50 first
    assert await backend.usage(CAP.key) == (Decimal("0.5"), Decimal("0.01"))
    server.stop()
    server.start()  # empty
    assert await _until_up(backend, "next")
    # The lease in flight was restored (its reservation counts) and its settlement works.
    assert await backend.usage(CAP.key) == (Decimal("0.5"), Decimal("0.02"))
    assert (await backend.settle("held", Decimal("0.01"), None, NOW + 1)).applied
    assert await backend.usage(CAP.key) == (Decimal("0.51"), Decimal("0.01"))
