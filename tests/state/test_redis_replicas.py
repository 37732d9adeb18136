"""Several processes (replicas) hitting the same Redis keys: caps and limits hold globally."""

from __future__ import annotations

import asyncio
import multiprocessing
from decimal import Decimal

import pytest

from costwarden.state.base import AdmissionPlan, RateBucket, ScopeKey, usd_to_units_up
from costwarden.state.redis import RedisStateBackend

pytestmark = pytest.mark.slow

NOW = 1_795_000_000.0
REPLICAS = 4
CAP_KEY = "budget:team=ml:month:2026-11"
RPM_KEY = "rate:key=k:rpm"


async def _replica(
    url: str, prefix: str, replica: int, attempts: int, *, amount: str, settle_as: str | None
) -> int:
    backend = RedisStateBackend.from_url(url, prefix, max_connections=16)
    cap = ScopeKey(CAP_KEY, Decimal("1.00"))
    rpm = RateBucket(RPM_KEY, "requests", 50, 1)

    async def one(i: int) -> bool:
        lease = f"r{replica}-{i}"
        scopes, rates = ((cap,), ()) if settle_as is not None else ((), (rpm,))
        outcome = await backend.admit(
            AdmissionPlan(lease, NOW, NOW + 120, usd_to_units_up(Decimal(amount)), scopes, rates)
        )
        if outcome.admitted and settle_as is not None:
            await backend.settle(lease, Decimal(settle_as), None, NOW)
        return outcome.admitted

    admitted = sum(await asyncio.gather(*(one(i) for i in range(attempts))))
    await backend.aclose()
    return admitted


def _run_replica(args: tuple[str, str, int, int, str, str | None]) -> int:
    url, prefix, replica, attempts, amount, settle_as = args
    return asyncio.run(_replica(url, prefix, replica, attempts, amount=amount, settle_as=settle_as))


def _run_replicas(args: list[tuple[str, str, int, int, str, str | None]]) -> list[int]:
    with multiprocessing.get_context("spawn").Pool(REPLICAS) as pool:
        return pool.map(_run_replica, args)


async def test_replicas_never_spend_past_a_shared_cap(redis_url: str, key_prefix: str):
    # Each admission reserves 0.03 and settles the worst case, so exactly 33 fit in $1.00.
    args = [(redis_url, key_prefix, r, 250, "0.03", "0.03") for r in range(REPLICAS)]
    admitted = await asyncio.to_thread(_run_replicas, args)
    backend = RedisStateBackend.from_url(redis_url, key_prefix)
    spent, reserved = await backend.usage(CAP_KEY)
    await backend.aclose()
    assert sum(admitted) == 33
    assert spent == Decimal("0.99") and spent <= Decimal("1.00")
    assert reserved == 0


async def test_requests_per_minute_hold_across_replicas(redis_url: str, key_prefix: str):
    args = [(redis_url, key_prefix, r, 30, "0", None) for r in range(REPLICAS)]
    admitted = await asyncio.to_thread(_run_replicas, args)
    assert sum(admitted) == 50
