"""The Redis scripts' own time per request, compared between versions of the Lua, without noise
from the gateway or the client: the same script calls replayed against each version.

    .venv/bin/python bench/redis_replay.py --tree before=/tmp/before/src --tree now=src \\
        [--floor] [--requests 3000] [--batch 6] [--rounds 7]

First records the ``EVALSHA`` calls that ``redis_cost.py``'s workload makes (the real engine and
Redis backend of this checkout, every control of ``bench_controls.py``, batches of ``--batch``,
settlements in their own calls). Then, in interleaved rounds, replays them, pipelined, against
the ``STEP`` script of each ``--tree`` (its ``costwarden/state/redis_scripts.py``, rendered with
this checkout's constants; the trees must read the wire format this checkout writes) on a fresh
key prefix, and reads from ``INFO commandstats`` the time redis-server spent running scripts.
``--floor`` adds ``bench/redis_floor.lua``: every Redis command a request's controls need and
the plan decoding, with none of the logic — what no rewrite of the Lua can go under with this
data model — and ``bench/redis_floor_lean.lua``, the same for a leaner data model. Prints µs
per request (medians; each round's value after it) and writes bench/results/redis_replay.json.

Why replay: ``redis_cost.py`` measures a live run, in which redis-server's CPU includes its
network wake-ups and the client's pace; on this shared 2-vCPU machine its rounds range ±20 %.
Replaying identical calls leaves only the scripts, which makes differences of ~10 % visible.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis
import redis_cost
from bench_controls import REDIS_URL
from wrkbench import write_results

from costwarden.state import redis_connections
from costwarden.state.base import (
    FINISHED_LEASE_RETENTION_S,
    GCRA_SLACK_S,
    SWEEP_BATCH,
    VELOCITY_BUCKET_S,
)

FLOORS = {  # --floor: lower bounds, not working scripts (see each file's header)
    "floor": Path(__file__).resolve().parent / "redis_floor.lua",
    "lean": Path(__file__).resolve().parent / "redis_floor_lean.lua",
}
_PIPELINE = 50  # calls sent before reading their replies: the replay is not latency-bound

Call = tuple[list[str], list[Any]]  # keys, args


def record(requests: int, batch: int) -> list[Call]:
    """Run redis_cost's workload in this process and keep every script call it makes."""
    calls: list[Call] = []
    send = redis_connections._evalsha

    async def recording(connection: Any, sha: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        calls.append((list(keys), list(args)))
        return await send(connection, sha, keys, args)

    redis_connections._evalsha = recording
    try:
        asyncio.run(redis_cost._child(requests, batch))
    finally:
        redis_connections._evalsha = send
    return calls


def step_source(tree: Path) -> str:
    """A tree's ``STEP`` script, rendered as this checkout's backend renders it."""
    path = tree / "costwarden" / "state" / "redis_scripts.py"
    spec = importlib.util.spec_from_file_location(f"scripts_{abs(hash(tree))}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"no redis_scripts.py under {tree}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(
        module.render(
            module.STEP,
            retention_s=math.ceil(FINISHED_LEASE_RETENTION_S),
            bucket_s=int(VELOCITY_BUCKET_S),
            sweep_batch=SWEEP_BATCH,
            slack_s=GCRA_SLACK_S,
        )
    )


def replay(client: redis.Redis, sha: str, calls: list[Call], requests: int) -> float:
    """Script µs per request for one replay of ``calls`` on a clean key prefix."""
    prefix = str(calls[0][1][0])
    for key in client.scan_iter(match=prefix + "*", count=1000):
        client.delete(key)
    client.config_resetstat()
    pipe = client.pipeline(transaction=False)
    for i, (keys, args) in enumerate(calls, 1):
        pipe.evalsha(sha, len(keys), *keys, *args)
        if i % _PIPELINE == 0:
            pipe.execute()
    pipe.execute()
    stats: dict[str, Any] = client.info("commandstats")
    return float(stats["cmdstat_evalsha"]["usec"]) / requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH to a src/")
    parser.add_argument("--floor", action="store_true", help="also replay bench/redis_floor*.lua")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    sources = {name: step_source(Path(p)) for name, p in (t.split("=", 1) for t in args.tree)}
    if args.floor:
        sources.update((name, path.read_text()) for name, path in FLOORS.items())
    if not sources:
        parser.error("give --tree NAME=PATH (one or more) and/or --floor")
    calls = record(args.requests, args.batch)
    requests = args.requests + redis_cost._WARM_UP
    client = redis.Redis.from_url(REDIS_URL)
    shas = {name: str(client.script_load(source)) for name, source in sources.items()}
    samples: dict[str, list[float]] = {name: [] for name in sources}
    for _ in range(args.rounds):  # interleaved: a slow spell of the machine hits every tree
        for name, sha in shas.items():
            samples[name].append(replay(client, sha, calls, requests))
    prefix = str(calls[0][1][0])
    for key in client.scan_iter(match=prefix + "*", count=1000):
        client.delete(key)
    client.close()
    print(f"script µs per request, {len(calls)} calls replayed ({requests} requests, batches "
          f"of {args.batch}, every control), medians of {args.rounds} rounds")  # fmt: skip
    print(f"{'version':<10} {'µs':>7}  rounds")
    results = {name: median(values) for name, values in samples.items()}
    for name, values in samples.items():
        print(f"{name:<10} {results[name]:>7.1f}  {' '.join(f'{v:.0f}' for v in values)}")
    write_results("redis_replay", {"args": vars(args), "results": results, "samples": samples})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
