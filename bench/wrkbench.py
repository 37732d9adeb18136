"""Shared by the wrk-driven benchmarks: run wrk, read its numbers, print and save a comparison."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    target: str
    connections: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    round: int = 0  # which pass of an interleaved run (see --rounds)


def parse_args() -> tuple[int, list[int], int]:
    """--duration, --connections and --rounds, shared by the wrk benchmarks; exits if wrk is
    missing. Each round runs every target once, so targets are interleaved and a machine that
    slows down for a while (shared vCPUs) skews one round, not one target."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", default="1,32")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    return args.duration, [int(c) for c in args.connections.split(",")], max(1, args.rounds)


def rotated(targets: tuple[str, ...], round_index: int) -> tuple[str, ...]:
    """The order in which one round runs its targets: rotated by one each round, so each
    target runs in each position equally often over a multiple of ``len(targets)`` rounds.
    Measured: whichever target ran right after the no-controls baseline read ~30 µs of
    main-thread CPU a request worse than in another position (compare_trees, two identical
    trees), so a fixed order biased every comparison against the second target."""
    shift = round_index % len(targets)
    return targets[shift:] + targets[:shift]


def thread_cpu_s(pid: int, tid: int | None = None) -> float:
    """CPU seconds (user + system) of one thread (default: the process's main thread)."""
    stat = Path(f"/proc/{pid}/task/{tid or pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def process_cpu_s(pid: int) -> float:
    """CPU seconds of every thread of a process."""
    return sum(thread_cpu_s(pid, int(tid)) for tid in os.listdir(f"/proc/{pid}/task"))


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _field(pattern: str, out: str) -> str:
    match = re.search(pattern, out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no {pattern!r}:\n{out}")
    return match.group(1)


def wrk(
    url: str, script: Path, connections: int, seconds: int, target: str, *, round_index: int = 0
) -> Run:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Run(
        target,
        connections,
        float(_field(r"Requests/sec:\s+([\d.]+)", out)),
        # Anchored to a line start: the +/- Stdev column also prints percentages.
        _ms(_field(r"^\s+50%\s+(\S+)", out)),
        _ms(_field(r"^\s+99%\s+(\S+)", out)),
        int(errors.group(1)) if errors else 0,
        round_index,
    )


def report(runs: list[Run], baseline: str, name: str, extra: dict[str, Any] | None = None) -> None:
    """Print each target against the ``baseline`` target at the same connection count and
    round, and save the table (and every run) to bench/results/<name>.json.

    With several rounds a row shows medians: req/s, latencies, and the share of the baseline
    computed round by round (each round's runs ran minutes apart at most), with its range."""
    label = f"% of {baseline}"
    print(
        f"{'target':<12}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}"
        f"{label:>16}{'range':>14}{'added p50':>11}{'added p99':>11}"
    )
    base = {(r.connections, r.round): r for r in runs if r.target == baseline}
    groups: dict[tuple[str, int], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.target, r.connections), []).append(r)
    summary = []
    for (target, conns), group in groups.items():
        shares = [100 * r.requests_per_s / base[conns, r.round].requests_per_s for r in group]
        add50 = median(r.p50_ms - base[conns, r.round].p50_ms for r in group)
        add99 = median(r.p99_ms - base[conns, r.round].p99_ms for r in group)
        row = {
            "target": target,
            "connections": conns,
            "rounds": len(group),
            "requests_per_s": round(median(r.requests_per_s for r in group), 1),
            "p50_ms": round(median(r.p50_ms for r in group), 3),
            "p99_ms": round(median(r.p99_ms for r in group), 3),
            "errors": sum(r.errors for r in group),
            f"pct_of_{baseline}": round(median(shares), 1),
            f"pct_of_{baseline}_range": [round(min(shares), 1), round(max(shares), 1)],
            "added_p50_ms": round(add50, 3),
            "added_p99_ms": round(add99, 3),
        }
        spread = f"{min(shares):.0f}-{max(shares):.0f}%"
        print(
            f"{target:<12}{conns:>6}{row['requests_per_s']:>10.0f}{row['p50_ms']:>9.2f}"
            f"{row['p99_ms']:>9.2f}{row['errors']:>9}{median(shares):>15.1f}%{spread:>14}"
            f"{add50:>+11.2f}{add99:>+11.2f}"
        )
        summary.append(row)
    machine = {"machine": platform.node(), "cpus": os.cpu_count() or 0}
    document = {**machine, **(extra or {}), "summary": summary, "runs": [asdict(r) for r in runs]}
    write_results(name, document)


def one_model_gateway(tmp: Path, name: str, upstream_port: int) -> dict[str, Any]:
    """A gateway config serving gpt-4o-mini from the fake upstream, with a ledger of its own
    under ``tmp`` (each benchmarked gateway gets one, named ``name``)."""
    return {
        "ledger": {
            "sqlite_path": str(tmp / f"{name}.db"),
            "spool_dir": str(tmp / f"spool-{name}"),
        },
        "models": [
            {
                "name": "gpt-4o-mini",
                "endpoints": [{"api_base": f"http://127.0.0.1:{upstream_port}/v1"}],
            }
        ],
    }


def write_results(name: str, document: dict[str, Any]) -> None:
    """Write a benchmark's results to bench/results/<name>.json and say where."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {out}")


CpuSamples = dict[tuple[str, int, int], float]


def cpu_rows(
    cpu: CpuSamples, variants: tuple[str, ...], baseline: str, conns: list[int], rounds: int
) -> list[dict[str, float | str]]:
    """Print and return main-thread CPU per request of each variant and what it adds over
    ``baseline`` (medians over the rounds, each round's variants measured side by side)."""
    rows: list[dict[str, float | str]] = []
    print("\nmain-thread CPU per request (medians over the rounds)")
    print(f"{'target':<12}{'conns':>6}{'main µs':>9}{'added µs':>10}{'added %':>9}")
    for c in conns:
        for variant in variants:
            added = [cpu[variant, c, i] - cpu[baseline, c, i] for i in range(rounds)]
            share = [a / cpu[baseline, c, i] * 100 for i, a in enumerate(added)]
            main_us = median(cpu[variant, c, i] for i in range(rounds))
            print(f"{variant:<12}{c:>6}{main_us:>9.1f}{median(added):>+10.1f}{median(share):>+8.1f}%")
            rows.append(
                {
                    "target": variant,
                    "connections": c,
                    "main_cpu_us": round(main_us, 1),
                    "added_main_cpu_us": round(median(added), 1),
                    "added_pct": round(median(share), 1),
                }
            )
    return rows
