"""What the Redis backend costs redis-server per request, per code version, without wrk.

    .venv/bin/python bench/redis_cost.py --tree before=/tmp/before/src --tree now=src \\
        [--requests 6000] [--batch 6] [--rounds 3]

On the benchmark machine redis-server shares two vCPUs with the gateway, the fake upstream and
wrk, so its CPU per request comes straight out of the gateway's throughput
(``bench_controls.py``). This measures that CPU alone: each ``--tree`` (run with
``PYTHONPATH=<tree>``, in a fresh process per tree and round, interleaved) admits and settles
``--requests`` requests with every control of ``bench_controls.py`` through the real engine
and Redis backend, in batches of ``--batch`` (about what one event-loop iteration of the
gateway gathers at 32 connections), each batch admitted while the batch before it is settled,
as in the gateway. Reads redis-server's CPU from /proc (so it must run on this machine; its
network wake-ups included, which vary from run to run here) and, from ``INFO commandstats``,
the time spent running scripts (steadier: the scripts' own cost) and the script calls; also
the client process's CPU. Prints µs per request
(medians over the rounds) and writes bench/results/redis_cost.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# In a --child these come from the tree under test (PYTHONPATH goes before the install).
import redis
from bench_controls import REDIS_URL, bench_request, gateway_config, local_redis_pid
from tests.support import procs
from wrkbench import process_cpu_s, write_results

from costwarden.config import load_settings
from costwarden.gateway.services import build_services
from costwarden.records import Principal, utcnow

ROOT = Path(__file__).resolve().parent.parent
_WARM_UP = 300
_COST = Decimal("0.0000123")


def _script_stats(client: redis.Redis) -> tuple[int, int, int]:
    """(script calls, commands run inside or outside scripts, µs spent running scripts)."""
    stats: dict[str, Any] = client.info("commandstats")
    scripts = [v for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_fcall")]
    calls, usec = sum(v["calls"] for v in scripts), sum(v["usec"] for v in scripts)
    return calls, sum(v["calls"] for v in stats.values()), usec


async def _child(requests: int, batch: int) -> dict[str, float]:
    pid = local_redis_pid()
    if pid is None:
        raise SystemExit("redis-server must run on this machine (its CPU is read from /proc)")
    prefix = "cost-" + secrets.token_hex(4)
    client = redis.Redis.from_url(REDIS_URL)
    with tempfile.TemporaryDirectory() as tmp:
        config = procs.write_config(
            Path(tmp) / "g.yaml", gateway_config(Path(tmp), "redis", 9, prefix)
        )
        services = await build_services(load_settings(config))
        admitter, engine = services.admitter(), services.policy
        principal = Principal(key_id="k1", user="bench-user", team="bench-team")
        created = utcnow()

        def ask(i: int) -> Any:
            body, raw, record = bench_request(i, principal, created)
            return admitter.request("chat.completions", body, raw, record, 16)

        async def settle(admitted: list[Any]) -> None:
            await engine.settle_many([(a, _COST, 36) for a in admitted])
            for admission in admitted:
                services.leases.drop(admission)

        async def run(start: int, count: int) -> None:
            # As in the gateway: one batch admitted while the one before it is settled.
            previous: list[Any] = []
            for first in range(start, start + count, batch):
                asked = [ask(i) for i in range(first, min(first + batch, start + count))]
                admitted, _ = await asyncio.gather(engine.admit_many(asked), settle(previous))
                previous = admitted
            await settle(previous)

        await run(0, _WARM_UP)
        calls0, commands0, script0 = _script_stats(client)
        redis0, own0, wall0 = process_cpu_s(pid), time.process_time(), time.perf_counter()
        await run(_WARM_UP, requests)
        redis_s, own_s = process_cpu_s(pid) - redis0, time.process_time() - own0
        wall_s = time.perf_counter() - wall0
        calls1, commands1, script1 = _script_stats(client)
        await services.close()
    for key in client.scan_iter(match="{" + prefix + "}*", count=1000):
        client.delete(key)
    client.close()
    return {
        "redis_us": redis_s / requests * 1e6,
        "script_us": (script1 - script0) / requests,
        "client_us": own_s / requests * 1e6,
        "wall_us": wall_s / requests * 1e6,
        # INFO itself is one command of the counted span
        "commands": (commands1 - commands0 - (calls1 - calls0) - 1) / requests,
        "script_calls": (calls1 - calls0) / requests,
    }


def _measure(tree: Path, requests: int, batch: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=f"{tree.resolve()}{os.pathsep}{ROOT}")
    command = [sys.executable, __file__, "--child", "--requests", str(requests)]
    command += ["--batch", str(batch)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", help="NAME=PATH to a src/")
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_child(args.requests, args.batch))))
        return 0
    if not args.tree:
        parser.error("give at least one --tree NAME=PATH")
    trees = dict(spec.split("=", 1) for spec in args.tree)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, path in trees.items():
            samples[name].append(_measure(Path(path), args.requests, args.batch))
    results = {
        name: {field: median(s[field] for s in runs) for field in runs[0]}
        for name, runs in samples.items()
    }
    print(
        f"per request, {args.requests} requests, batches of {args.batch}, every control, "
        f"medians of {args.rounds} rounds"
    )
    print(f"{'tree':<10} {'redis µs':>9} {'rounds':>24} {'scripts µs':>11} {'rounds':>24} "
          f"{'client µs':>10} {'commands':>9} {'calls':>6}")  # fmt: skip
    for name, r in results.items():
        each = " ".join(f"{s['redis_us']:.0f}" for s in samples[name])
        each_script = " ".join(f"{s['script_us']:.0f}" for s in samples[name])
        print(
            f"{name:<10} {r['redis_us']:>9.1f} {each:>24} {r['script_us']:>11.1f}"
            f" {each_script:>24} {r['client_us']:>10.1f} {r['commands']:>9.1f}"
            f" {r['script_calls']:>6.2f}"
        )
    write_results("redis_cost", {"args": vars(args), "results": results, "samples": samples})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
