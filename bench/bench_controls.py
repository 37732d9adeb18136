"""What the spend controls cost: gateway throughput and latency with and without them.

    .venv/bin/python bench/bench_controls.py [--duration 10] [--connections 1,32] [--rounds 3]

Starts one fake upstream and three gateways (real processes, SQLite ledger each), identical but
for their controls, and drives each with wrk (Debian package ``wrk``) in one run:

    none    no budget, rate limit or breaker: admission is skipped altogether
    memory  every control on, counters in the gateway process (the embedded default)
    redis   the same controls, counters in Redis (what replicas share)

"Every control": a global, a per-user and a per-team budget, rpm + tpm per key, the session
breaker (step and spend limits, loop detection) and the spend-velocity breaker, all with
limits far above what the run reaches, so every request pays for every check and none is
refused. Each request carries a session tag (64 sessions) and a distinct prompt, so loop
detection fingerprints it without ever tripping. Prints req/s, p50 / p99 and the share of the
no-controls throughput (medians over the rounds, each round's share measured against the same
round's no-controls run), then the CPU each costs per request: the gateway's main thread
(what saturates; /proc) and, when redis-server runs on this machine, Redis's — on a small box
it takes its CPU from the same cores as the gateway. Writes bench/results/controls.json.
Redis: $COSTWARDEN_BENCH_REDIS_URL (default redis://127.0.0.1:6379/0); keys go under a prefix
of this run's and are deleted after.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from statistics import median
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.support import procs
from wrkbench import (
    Run,
    one_model_gateway,
    parse_args,
    process_cpu_s,
    report,
    rotated,
    thread_cpu_s,
    wrk,
)

from costwarden.records import Principal, Tags, UsageRecord

REDIS_URL = os.environ.get("COSTWARDEN_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
VARIANTS = ("none", "memory", "redis")
HUGE_USD = "1000000"  # far above any spend of a run: every budget is checked, none refuses
HUGE_COUNT = 1_000_000_000
SESSIONS = 64

# A distinct prompt per request (so loop detection sees no repeats; the run label keeps prompts
# of successive wrk runs apart, as wrk restarts the counter) and a session tag per request.
# The same script drives every variant, so its cost is the same in all of them.
_WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
local counter = 0
local template = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":' ..
  '"Benchmark the gateway controls, run %(run)s, request %%d."}],"max_tokens":16}'
request = function()
  counter = counter + 1
  wrk.headers["x-costwarden-session"] = "bench-" .. (counter %% %(sessions)d)
  return wrk.format(nil, nil, nil, string.format(template, counter))
end
"""


def bench_request(
    i: int, principal: Principal, created: datetime
) -> tuple[dict[str, Any], bytes, UsageRecord]:
    """Request ``i`` as the in-process tools build it (body, raw body, ledger record): what the
    wrk script sends, one of 64 sessions."""
    text = f"Benchmark the gateway controls, request {i}."
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 16,
    }
    record = UsageRecord(
        request_id=str(i), created_at=created, api="chat.completions",
        requested_model="gpt-4o-mini", principal=principal,
        tags=Tags(session=f"bench-{i % SESSIONS}"), resolved_model="gpt-4o-mini",
    )  # fmt: skip
    return body, json.dumps(body).encode(), record


def all_controls() -> dict[str, Any]:
    budget = {"period": "month", "limit_usd": HUGE_USD}
    return {
        "budgets": [
            {"name": "global", "scope": "global", **budget},
            {"name": "per-user", "scope": {"user": "*"}, **budget},
            {"name": "per-team", "scope": {"team": "*"}, **budget},
        ],
        "rate_limits": [{"scope": {"key": "*"}, "rpm": HUGE_COUNT, "tpm": HUGE_COUNT}],
        "breakers": {
            "session": {
                "max_steps": HUGE_COUNT,
                "max_spend_usd": HUGE_USD,
                "loop_repeat_k": 3,
                "loop_window_s": 60,
            },
            "velocity": {"usd_per_minute": HUGE_USD},
        },
    }


def gateway_config(tmp: Path, variant: str, upstream_port: int, prefix: str) -> dict[str, Any]:
    data = one_model_gateway(tmp, variant, upstream_port)
    if variant != "none":
        data["policy"] = all_controls()
    if variant == "redis":
        data["state"] = {"backend": "redis", "redis_url": REDIS_URL, "key_prefix": prefix}
    return data


# (variant, connections, round) -> CPU µs per request: the gateway's main thread, and Redis
CpuSamples = dict[tuple[str, int, int], dict[str, float]]


def local_redis_pid() -> int | None:
    """redis-server's pid when it runs on this machine (its CPU is then part of the cost)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "redis-server":
                    return int(entry.name)
            except OSError:
                continue
    return None


def measure(
    tmp: Path, conns: list[int], seconds: int, rounds: int, prefix: str, *, cpu: CpuSamples
) -> list[Run]:
    up_port = procs.free_port()
    ports = {variant: procs.free_port() for variant in VARIANTS}
    commands = [(procs.fake_upstream_command(up_port), up_port)]
    keys: dict[str, str] = {}
    for variant in VARIANTS:
        config = procs.write_config(
            tmp / f"{variant}.yaml", gateway_config(tmp, variant, up_port, prefix)
        )
        keys[variant] = procs.create_key(config, "bench-user", "bench-team")
        commands.append((procs.gateway_command(config, ports[variant]), ports[variant]))
    urls = {v: f"http://127.0.0.1:{port}/v1/chat/completions" for v, port in ports.items()}

    redis_pid = local_redis_pid()
    pids: dict[str, int] = {}

    def drive(variant: str, connections: int, duration: int, label: str, index: int) -> Run:
        script = tmp / f"{variant}-{label}-{connections}-{index}.lua"
        script.write_text(
            _WRK_SCRIPT % {"key": keys[variant], "sessions": SESSIONS, "run": script.stem}
        )
        main, store = thread_cpu_s(pids[variant]), process_cpu_s(redis_pid) if redis_pid else 0
        run = wrk(urls[variant], script, connections, duration, label, round_index=index)
        served = run.requests_per_s * duration
        cpu[variant, connections, index] = {
            "main_us": (thread_cpu_s(pids[variant]) - main) / served * 1e6,
            "redis_us": (process_cpu_s(redis_pid) - store) / served * 1e6 if redis_pid else 0,
        }
        return run

    runs: list[Run] = []
    with procs.spawned_together(commands) as started:
        pids.update(zip(VARIANTS, (p.pid for p in started[1:]), strict=True))
        for variant in VARIANTS:  # warm pools, caches and counters before measuring
            drive(variant, 8, 2, "warm", 0)
        for index in range(rounds):  # interleaved: a slow spell of the machine hits all
            for c in conns:
                for variant in rotated(VARIANTS, index):
                    runs.append(drive(variant, c, seconds, variant, index))
    return runs


def cpu_rows(cpu: CpuSamples, conns: list[int], rounds: int) -> list[dict[str, Any]]:
    """Where the time goes: per request, the gateway main thread's CPU (what saturates) and
    redis-server's (on this machine, it competes with the gateway for the same cores)."""
    rows = []
    for c in conns:
        for variant in VARIANTS:
            samples = [cpu[variant, c, i] for i in range(rounds)]
            added = [s["main_us"] - cpu["none", c, i]["main_us"] for i, s in enumerate(samples)]
            ratio = [cpu["none", c, i]["main_us"] / s["main_us"] for i, s in enumerate(samples)]
            row = {
                "target": variant,
                "connections": c,
                "main_cpu_us": round(median(s["main_us"] for s in samples), 1),
                "added_main_cpu_us": round(median(added), 1),
                "main_cpu_ratio": round(median(ratio), 3),
                "redis_cpu_us": round(median(s["redis_us"] for s in samples), 1),
            }
            rows.append(row)
    return rows


def print_cpu(rows: list[dict[str, Any]]) -> None:
    print("\nCPU per request (medians over the rounds; main thread: the gateway's event loop)")
    print(f"{'target':<10}{'conns':>6}{'main µs':>9}{'added':>8}{'main ratio':>12}{'redis µs':>10}")
    for row in rows:
        print(
            f"{row['target']:<10}{row['connections']:>6}{row['main_cpu_us']:>9.1f}"
            f"{row['added_main_cpu_us']:>+8.1f}{100 * row['main_cpu_ratio']:>11.1f}%"
            f"{row['redis_cpu_us']:>10.1f}"
        )


def delete_keys(client: redis.Redis, prefix: str) -> None:
    for key in client.scan_iter(match=f"{{{prefix}}}:*", count=1000):
        client.delete(key)


def main() -> int:
    duration, conns, rounds = parse_args()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        print(f"Redis at {REDIS_URL} is needed for the redis variant: {exc}", file=sys.stderr)
        return 2
    prefix = f"cwbench:{os.getpid()}:{secrets.token_hex(4)}"
    cpu: CpuSamples = {}
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            runs = measure(Path(tmpdir), conns, duration, rounds, prefix, cpu=cpu)
    finally:
        delete_keys(client, prefix)
        client.close()
    rows = cpu_rows(cpu, conns, rounds)
    report(runs, baseline="none", name="controls", extra={"controls": all_controls(), "cpu": rows})
    print_cpu(rows)
    refused = sum(r.errors for r in runs)
    if refused:
        print(
            f"{refused} requests were not answered 2xx: the numbers include refusals",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
