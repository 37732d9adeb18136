"""What the spend controls cost, compared between versions of the code, side by side in one run.

    git archive HEAD~3 src | tar -x -C /tmp/before        # any src/ tree: a revision, a hack
    .venv/bin/python bench/compare_trees.py --tree before=/tmp/before/src --tree now=src \\
        [--rounds 6] [--duration 4] [--connections 32] [--backend redis]

Starts one fake upstream, one gateway without controls (this checkout) and one gateway with
every control of ``bench_controls.py`` per ``--tree`` (run with ``PYTHONPATH=<tree>``), then
drives them with wrk in interleaved rounds. ``--backend redis`` keeps the controlled gateways'
counters in Redis ($COSTWARDEN_BENCH_REDIS_URL, a key prefix per tree and run, deleted after)
instead of in process. For each it reports req/s and, steadier on a
shared machine, the **CPU time of the gateway's main thread per request** (from
``/proc/<pid>/task/<pid>/stat``): the main thread is what saturates, so its CPU per request is
what throughput is the inverse of, and it does not count time lost to other processes. Each
tree's added µs per request and share of the no-controls throughput are medians of per-round
values. Writes bench/results/compare.json.

Measured on the 2-vCPU development machine: two identical trees differ by up to ~6 µs per
request over 4 rounds on a quiet day, and by up to ~30 µs on a noisy one, when a variant's
median moves by ±40 µs between runs. Rounds rotate the order of the targets (see
``wrkbench.rotated``). ``--together`` drives every target at once instead, each with its own
wrk, so that all of them meet the same spell of the machine: the CPU each spends per request
is then paired in time, which resolved a difference that sequential runs blurred (see
docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis
from bench_controls import _WRK_SCRIPT, REDIS_URL, SESSIONS, gateway_config
from tests.support import procs
from wrkbench import rotated, thread_cpu_s, write_results, wrk


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=PATH to a src/")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--backend", choices=("memory", "redis"), default="memory")
    parser.add_argument(
        "--together",
        action="store_true",
        help="drive all targets at the same time (paired by time) instead of one after another",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    return args


def start_commands(
    tmp: Path, trees: dict[str, str], upstream: int, backend: str, run_id: str
) -> tuple[list[tuple[list[str], int]], dict[str, int], dict[str, str]]:
    ports: dict[str, int] = {}
    keys: dict[str, str] = {}
    commands = [(procs.fake_upstream_command(upstream), upstream)]
    for name in ("none", *trees):
        variant = "none" if name == "none" else backend
        data = gateway_config(tmp, variant, upstream, f"compare-{run_id}-{name}")
        data["ledger"] = {"sqlite_path": str(tmp / f"{name}.db"), "spool_dir": str(tmp / name)}
        config = procs.write_config(tmp / f"{name}.yaml", data)
        keys[name] = procs.create_key(config, "bench-user", "bench-team")
        ports[name] = procs.free_port()
        command = procs.gateway_command(config, ports[name])
        if name != "none":
            command = ["env", f"PYTHONPATH={trees[name]}", *command]
        commands.append((command, ports[name]))
    return commands, ports, keys


def measure(args: argparse.Namespace, trees: dict[str, str], tmp: Path) -> dict[str, Any]:
    upstream = procs.free_port()
    commands, ports, keys = start_commands(tmp, trees, upstream, args.backend, args.run_id)
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in ports}

    def drive(name: str, pid: int, seconds: int) -> dict[str, float]:
        script = tmp / f"{name}-{secrets.token_hex(4)}.lua"
        script.write_text(
            _WRK_SCRIPT % {"key": keys[name], "sessions": SESSIONS, "run": script.stem}
        )
        url = f"http://127.0.0.1:{ports[name]}/v1/chat/completions"
        before = thread_cpu_s(pid)
        run = wrk(url, script, args.connections, seconds, name)
        if run.errors:
            raise SystemExit(f"{name}: {run.errors} answers were not 2xx")
        cpu_us = (thread_cpu_s(pid) - before) / (run.requests_per_s * seconds) * 1e6
        return {"req_s": run.requests_per_s, "main_cpu_us": cpu_us}

    with procs.spawned_together(commands) as started:
        pids = dict(zip(ports, (p.pid for p in started[1:]), strict=True))
        for name, pid in pids.items():
            drive(name, pid, 2)  # warm pools, caches and counters
        for index in range(args.rounds):
            if args.together:
                for name, result in drive_together(drive, pids, args.duration).items():
                    rounds[name].append(result)
                continue
            for name in rotated(tuple(pids), index):
                rounds[name].append(drive(name, pids[name], args.duration))
    return rounds


def drive_together(
    drive: Callable[[str, int, int], dict[str, float]], pids: dict[str, int], seconds: int
) -> dict[str, dict[str, float]]:
    """Every target at once, each by its own wrk: all of them see the same spell of the
    machine, so their CPU per request compares without the drift between sequential runs
    (they share the cores, so each runs slower than alone: compare them, not the absolutes)."""
    results: dict[str, dict[str, float]] = {}

    def run(name: str) -> None:
        results[name] = drive(name, pids[name], seconds)

    threads = [threading.Thread(target=run, args=(name,)) for name in pids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(results) != len(pids):
        raise SystemExit("a wrk run failed; see above")
    return results


def summarise(rounds: dict[str, list[dict[str, float]]]) -> list[dict[str, Any]]:
    base = rounds["none"]
    rows = []
    for name, runs in rounds.items():
        added = [r["main_cpu_us"] - b["main_cpu_us"] for r, b in zip(runs, base, strict=True)]
        share = [r["req_s"] / b["req_s"] for r, b in zip(runs, base, strict=True)]
        rows.append(
            {
                "tree": name,
                "req_s": statistics.median(r["req_s"] for r in runs),
                "main_cpu_us": statistics.median(r["main_cpu_us"] for r in runs),
                "added_us": statistics.median(added),
                "share_of_none": statistics.median(share),
                "share_range": (min(share), max(share)),
                "rounds": runs,
            }
        )
    return rows


def main() -> int:
    args = parse_args()
    trees = dict(spec.split("=", 1) for spec in args.tree)
    if "none" in trees:
        sys.exit("'none' names the gateway without controls; pick another tree name")
    args.run_id = secrets.token_hex(4)
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            resolved = {k: str(Path(v).resolve()) for k, v in trees.items()}
            rounds = measure(args, resolved, Path(tmpdir))
    finally:
        if args.backend == "redis":
            client = redis.Redis.from_url(REDIS_URL)
            for key in client.scan_iter(match="{compare-" + args.run_id + "-*", count=1000):
                client.delete(key)
            client.close()
    rows = summarise(rounds)
    print(
        f"{args.connections} connections, {args.rounds} rounds of {args.duration} s,"
        f" {args.backend} backend"
    )
    print(f"{'tree':<10} {'req/s':>7} {'main µs/req':>12} {'added µs':>9} {'% of none':>10} range")
    for row in rows:
        low, high = row["share_range"]
        print(
            f"{row['tree']:<10} {row['req_s']:>7.0f} {row['main_cpu_us']:>12.1f} "
            f"{row['added_us']:>+9.1f} {100 * row['share_of_none']:>9.1f}% "
            f"{100 * low:.0f}-{100 * high:.0f}%"
        )
    write_results("compare", {"connections": args.connections, "trees": trees, "results": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
