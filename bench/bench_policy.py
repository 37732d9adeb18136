"""Admission + settlement cost of the policy engine: in-process counters vs Redis.

Each operation is one ``admit`` (3 budgets, session spend, 2 rate buckets, session and velocity
breakers: the realistic worst case, all in one atomic step) followed by one ``settle``. Latency
is measured one operation at a time; throughput with CONCURRENCY operations in flight.

    .venv/bin/python bench/bench_policy.py [--redis-url URL] [--ops N]

Prints a table and writes bench/results/policy.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
import uuid
from decimal import Decimal
from pathlib import Path

from redis.asyncio import Redis

from costwarden.policy.config import (
    BreakerConfig,
    BudgetRule,
    PolicyConfig,
    RateLimitRule,
    SessionBreakerConfig,
    VelocityBreakerConfig,
)
from costwarden.policy.engine import AdmissionRequest, PolicyEngine
from costwarden.policy.events import MemoryEventSink
from costwarden.records import Principal, Tags
from costwarden.state.base import StateBackend, usd_to_units_up
from costwarden.state.memory import MemoryStateBackend
from costwarden.state.redis import RedisStateBackend

CONCURRENCY = 64
RESULTS = Path(__file__).parent / "results" / "policy.json"

POLICY = PolicyConfig(
    budgets=(
        BudgetRule(period="month", limit_usd=Decimal(1_000_000)),
        BudgetRule(scope={"team": "*"}, period="day", limit_usd=Decimal(100_000)),
        BudgetRule(scope={"user": "*", "model": "*"}, period="week", limit_usd=Decimal(100_000)),
    ),
    rate_limits=(
        RateLimitRule(scope={"key": "*"}, rpm=10_000_000, tpm=10**12),
        RateLimitRule(scope={"team": "*"}, rpm=10_000_000),
    ),
    breakers=BreakerConfig(
        session=SessionBreakerConfig(
            max_steps=10_000_000, max_spend_usd=Decimal(100_000), loop_repeat_k=5
        ),
        velocity=VelocityBreakerConfig(usd_per_minute=Decimal(1_000_000)),
    ),
)


def _request(i: int) -> AdmissionRequest:
    return AdmissionRequest(
        principal=Principal(key_id=f"key-{i % 50}", user=f"user-{i % 50}", team=f"team-{i % 5}"),
        tags=Tags(session=f"session-{i % 200}"),
        model="gpt-4o",
        estimated_input_tokens=800,
        max_output_tokens=400,
        worst_case_units=usd_to_units_up(Decimal("0.0060")),
        fingerprint=f"fp-{i}",
    )


async def _one(engine: PolicyEngine, i: int) -> None:
    admission = await engine.admit(_request(i))
    await engine.settle(admission, Decimal("0.0031"), 950)


async def _measure(state: StateBackend, ops: int) -> dict[str, float]:
    engine = PolicyEngine(POLICY, state, events=MemoryEventSink())
    for i in range(min(200, ops)):  # warm up (script load, connection pool)
        await _one(engine, i)
    latencies_us: list[float] = []
    for i in range(ops):
        started = time.perf_counter_ns()
        await _one(engine, i)
        latencies_us.append((time.perf_counter_ns() - started) / 1000)
    latencies_us.sort()

    async def worker(offset: int) -> None:
        for i in range(offset, ops, CONCURRENCY):
            await _one(engine, i)

    burst_started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    elapsed = time.perf_counter() - burst_started
    return {
        "ops": ops,
        "p50_us": round(statistics.median(latencies_us), 1),
        "p99_us": round(latencies_us[int(len(latencies_us) * 0.99) - 1], 1),
        "sequential_ops_per_s": round(ops / (sum(latencies_us) / 1e6), 1),
        "concurrent_ops_per_s": round(ops / elapsed, 1),
    }


async def _redis_results(url: str, ops: int) -> dict[str, float]:
    prefix = "cwbench-" + uuid.uuid4().hex
    state = RedisStateBackend.from_url(url, prefix)
    try:
        return await _measure(state, ops)
    finally:
        await state.aclose()
        client = Redis.from_url(url)
        keys = [k async for k in client.scan_iter(match="{" + prefix + "}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
        await client.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--ops", type=int, default=3000)
    args = parser.parse_args()
    results = {
        "memory": await _measure(MemoryStateBackend(), args.ops),
        "redis": await _redis_results(args.redis_url, args.ops),
    }
    header = f"{'backend':<8} {'p50 µs':>9} {'p99 µs':>9} {'seq ops/s':>10} {'conc ops/s':>11}"
    print("policy admit + settle (3 budgets, session spend, 2 rate rules, 2 breakers)")
    print(header)
    for name, r in results.items():
        print(
            f"{name:<8} {r['p50_us']:>9} {r['p99_us']:>9} "
            f"{r['sequential_ops_per_s']:>10} {r['concurrent_ops_per_s']:>11}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "policy admit+settle",
        "concurrency": CONCURRENCY,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "results": results,
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
