"""Soak: a real gateway process under a steady mixed load for minutes, sampled as it runs.

    .venv/bin/python bench/soak.py [--minutes 20] [--rate 40] [--interval 5]

Starts the fake upstream and ``costwarden serve`` (SQLite ledger, spool, one budget) as real
processes and sends ``--rate`` requests/s at fixed intervals (open loop: a slow gateway gets
more requests in flight, not fewer requests) from several keys: OpenAI chat unary and
streamed, Anthropic messages unary and streamed, a key whose budget refuses every request,
and a key that does not exist. Every ``--interval`` seconds it samples the gateway's RSS
(``/proc/<pid>/status`` VmRSS), open file descriptors (``/proc/<pid>/fd``), the ledger
database size (db + WAL), the spool size, requests/s and outcomes by class. Prints a table,
then RSS growth after warm-up: the least-squares slope (MB/min) over the last 75 % of the
samples; at the end, the ledger's records by status (the unknown key's 401s have none:
they are refused before a record exists). Writes bench/results/soak.json (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.support import procs
from wrkbench import RESULTS

WARM_UP_SHARE = 0.25  # the first quarter is warm-up: pools, caches and arenas filling
BAD_KEY = "cw-" + "x" * 43  # well-formed, unknown: a 401 after a lookup
PROMPT = "Summarise the quarterly spend of team {n} in two sentences, please."


@dataclass
class Sample:
    t_s: float
    rss_mb: float
    open_fds: int
    ledger_mb: float
    spool_mb: float
    requests_per_s: float
    outcomes: dict[str, int]  # since the previous sample
    in_flight: int


@dataclass
class Load:
    """Request outcomes counted by the driver; the sampler reads and resets ``window``."""

    window: Counter[str] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0

    def count(self, outcome: str) -> None:
        self.window[outcome] += 1
        self.total[outcome] += 1


def gateway_config(tmp: Path, upstream_port: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{upstream_port}/v1"
    return {
        "ledger": {"sqlite_path": str(tmp / "ledger.db"), "spool_dir": str(tmp / "spool")},
        "models": [
            {"name": "gpt-4o-mini", "endpoints": [{"api_base": base}]},
            {
                "name": "claude-sonnet-4",
                "endpoints": [
                    {
                        "api_base": base,
                        "provider": "anthropic",
                        "upstream_model": "claude-sonnet-4-20250514",
                    }
                ],
            },
        ],
        # A budget far below one request's worst case: the "broke" user is always refused.
        "policy": {
            "budgets": [
                {"name": "broke", "scope": {"user": "broke"}, "period": "day", "limit_usd": "1e-6"}
            ]
        },
    }


def request_for(n: int, keys: list[str], broke: str) -> tuple[str, str, dict[str, Any]]:
    """The n-th request of the mix: (path, key, body). Out of every 20: 8 chat unary, 6 chat
    streamed, 2 messages unary, 2 messages streamed, 1 refused by budget, 1 unknown key."""
    slot = n % 20
    text = PROMPT.format(n=n % 97)
    key = keys[n % len(keys)]
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    messages = {**chat, "model": "claude-sonnet-4", "max_tokens": 64}
    if slot < 8:
        return "/v1/chat/completions", key, {**chat, "max_tokens": 32}
    if slot < 14:
        return "/v1/chat/completions", key, {**chat, "max_tokens": 32, "stream": True}
    if slot < 16:
        return "/v1/messages", key, messages
    if slot < 18:
        return "/v1/messages", key, {**messages, "stream": True}
    if slot == 18:
        return "/v1/chat/completions", broke, chat
    return "/v1/chat/completions", BAD_KEY, chat


async def one_request(
    session: aiohttp.ClientSession, url: str, key: str, body: dict[str, Any], load: Load
) -> None:
    load.in_flight += 1
    try:
        async with session.post(url, json=body, headers={"authorization": f"Bearer {key}"}) as r:
            await r.read()  # a stream is read to its end like an SDK would
            load.count(str(r.status))
    except (aiohttp.ClientError, TimeoutError) as exc:
        load.count(type(exc).__name__)
    finally:
        load.in_flight -= 1


async def drive(
    base: str, keys: list[str], broke: str, *, rate: float, until: float, load: Load
) -> None:
    """Open loop: request n starts at n / rate seconds, whatever happened to earlier ones."""
    connector = aiohttp.TCPConnector(limit=256)
    timeout = aiohttp.ClientTimeout(total=60)
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.monotonic()
        n = 0
        while (now := time.monotonic()) < until:
            due = start + n / rate
            if due > now:
                await asyncio.sleep(due - now)
            path, key, body = request_for(n, keys, broke)
            task = asyncio.create_task(one_request(session, base + path, key, body, load))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        await asyncio.gather(*tasks)


def _tree_mb(path: Path) -> float:
    if not path.exists():
        return 0.0
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    total = 0
    for f in files:
        try:
            total += f.stat().st_size
        except FileNotFoundError:  # a spool segment deleted as it was copied
            continue
    return total / 1e6


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def sample_every(
    pid: int, tmp: Path, *, interval: float, until: float, load: Load, out: list[Sample]
) -> None:
    start = last = time.monotonic()
    while time.monotonic() < until:
        await asyncio.sleep(interval)
        now = time.monotonic()
        window, load.window = load.window, Counter()
        ledger = _tree_mb(tmp / "ledger.db") + _tree_mb(tmp / "ledger.db-wal")
        sample = Sample(
            t_s=round(now - start, 1),
            rss_mb=round(rss_mb(pid), 1),
            open_fds=len(os.listdir(f"/proc/{pid}/fd")),
            ledger_mb=round(ledger, 2),
            spool_mb=round(_tree_mb(tmp / "spool"), 3),
            requests_per_s=round(sum(window.values()) / (now - last), 1),
            outcomes=dict(window),
            in_flight=load.in_flight,
        )
        last = now
        out.append(sample)
        print_row(sample)


def print_row(s: Sample) -> None:
    outcomes = " ".join(f"{k}:{v}" for k, v in sorted(s.outcomes.items()))
    print(
        f"{s.t_s:>8.0f}{s.rss_mb:>9.1f}{s.open_fds:>6}{s.ledger_mb:>10.2f}{s.spool_mb:>9.3f}"
        f"{s.requests_per_s:>8.1f}{s.in_flight:>6}  {outcomes}",
        flush=True,
    )


def slope_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return 60 * cov / var if var else 0.0


def summarise(samples: list[Sample], load: Load, args: argparse.Namespace) -> dict[str, Any]:
    steady = samples[int(len(samples) * WARM_UP_SHARE) :]
    rss = [(s.t_s, s.rss_mb) for s in steady]
    return {
        "minutes": args.minutes,
        "rate_per_s": args.rate,
        "interval_s": args.interval,
        "cpus": os.cpu_count(),
        "requests": sum(load.total.values()),
        "outcomes": dict(load.total),
        "rss_mb_after_warm_up": steady[0].rss_mb if steady else None,
        "rss_mb_end": samples[-1].rss_mb if samples else None,
        "rss_mb_max": max(s.rss_mb for s in samples) if samples else None,
        "rss_slope_mb_per_min": round(slope_per_min(rss), 3),
        "fds_min_max": [min(s.open_fds for s in steady), max(s.open_fds for s in steady)]
        if steady
        else None,
        "fd_slope_per_min": round(slope_per_min([(s.t_s, s.open_fds) for s in steady]), 3),
        "ledger_mb_end": samples[-1].ledger_mb if samples else None,
        "spool_mb_max": max(s.spool_mb for s in samples) if samples else None,
        "samples": [asdict(s) for s in samples],
    }


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    up_port, gw_port = procs.free_port(), procs.free_port()
    config = procs.write_config(tmp / "cw.yaml", gateway_config(tmp, up_port))
    keys = [procs.create_key(config, f"user{i}", f"team{i % 2}") for i in range(4)]
    broke = procs.create_key(config, "broke", "team0")
    load, samples = Load(), []
    with procs.fake_upstream(up_port), procs.gateway(config, gw_port) as gateway:
        print(
            f"{'t s':>8}{'RSS MB':>9}{'fds':>6}{'ledger MB':>10}{'spool MB':>9}"
            f"{'req/s':>8}{'busy':>6}  outcomes"
        )
        until = time.monotonic() + args.minutes * 60
        base = f"http://127.0.0.1:{gw_port}"
        await asyncio.gather(
            drive(base, keys, broke, rate=args.rate, until=until, load=load),
            sample_every(
                gateway.pid, tmp, interval=args.interval, until=until, load=load, out=samples
            ),
        )
    result = summarise(samples, load, args)
    with sqlite3.connect(tmp / "ledger.db") as db:  # after a clean stop: all copied
        rows = db.execute("SELECT status, COUNT(*) FROM usage_records GROUP BY status")
        result["ledger_records"] = dict(rows.fetchall())
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--out", default="soak", help="bench/results/<out>.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        result = asyncio.run(run(args, Path(tmpdir)))
    print(
        f"requests {result['requests']} {result['outcomes']}\n"
        f"RSS after warm-up {result['rss_mb_after_warm_up']} MB, end {result['rss_mb_end']} MB, "
        f"slope {result['rss_slope_mb_per_min']} MB/min over the last "
        f"{100 * (1 - WARM_UP_SHARE):.0f} %; fds {result['fds_min_max']}; "
        f"ledger {result['ledger_mb_end']} MB; spool max {result['spool_mb_max']} MB; "
        f"ledger records by status {result['ledger_records']}"
    )
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{args.out}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
