"""What the Redis backend leaves behind: settled requests must not pile up keys."""

from __future__ import annotations

from decimal import Decimal

from redis.asyncio import Redis

from costwarden.state.base import AdmissionPlan, ScopeKey, SessionCheck, usd_to_units_up
from costwarden.state.redis import RedisStateBackend

NOW = 1_795_000_000.0


async def _keys(redis_url: str, prefix: str) -> list[str]:
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        return sorted([k async for k in client.scan_iter(match="{" + prefix + "}*")])
    finally:
        await client.aclose()


async def test_settled_and_released_leases_leave_no_key(redis_url: str, key_prefix: str):
    backend = RedisStateBackend.from_url(redis_url, key_prefix)
    cap = ScopeKey("budget:global:day:x", Decimal(10), NOW + 86_400)
    units = usd_to_units_up(Decimal("0.01"))
    try:
        for i in range(50):
            plan = AdmissionPlan(f"l{i}", NOW + i, NOW + i + 120, units, (cap,))
            assert (await backend.admit(plan)).admitted
        settled = [(f"l{i}", Decimal("0.005"), None) for i in range(49)]
        assert all(o.applied for o in await backend.settle_many(settled, NOW + 60))
        assert await backend.release("l49", NOW + 60)
        # A second settle of a forgotten lease is still a no-op, as in process.
        assert not (await backend.settle("l0", Decimal("0.005"), None, NOW + 61)).applied
        assert await backend.usage(cap.key) == (Decimal("0.245"), Decimal(0))
    finally:
        await backend.aclose()
    # The counter, and the one epoch key per deployment (its absence means the data was lost).
    tag = f"{{{key_prefix}}}:"
    assert await _keys(redis_url, key_prefix) == [tag + cap.key, tag + "epoch"]


async def test_a_counters_ttl_is_set_when_new_and_kept_after(redis_url: str, key_prefix: str):
    backend = RedisStateBackend.from_url(redis_url, key_prefix)
    client = Redis.from_url(redis_url, decode_responses=True)
    session = SessionCheck("session:k:s", None, 3, 60.0, 30.0, 3600.0)
    try:
        for i, expiry in enumerate((NOW + 3600, NOW + 3600, NOW + 7200)):
            cap = ScopeKey("session:k:s:spend", Decimal(1), expiry, report_pct=None)
            plan = AdmissionPlan(
                f"l{i}", NOW, NOW + 120, 1, (cap,), session=session, fingerprint=f"fp{i}"
            )
            assert (await backend.admit(plan)).admitted
            ttl = await client.ttl(f"{{{key_prefix}}}:{cap.key}")
            assert expiry - NOW - 2 <= ttl <= expiry - NOW  # pushed out only to a later expiry
    finally:
        await client.aclose()
        await backend.aclose()
