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
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass
class Run:
    target: str
    connections: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def parse_args() -> tuple[int, list[int]]:
    """--duration and --connections, shared by the wrk benchmarks; exits if wrk is missing."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", default="1,32")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    return args.duration, [int(c) for c in args.connections.split(",")]


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


def wrk(url: str, script: Path, connections: int, seconds: int, target: str) -> Run:
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
    )


def report(runs: list[Run], baseline: str, name: str, extra: dict[str, Any] | None = None) -> None:
    """Print each run against the ``baseline`` target at the same connection count, and save
    the table to bench/results/<name>.json."""
    label = f"% of {baseline}"
    print(
        f"{'target':<12}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}"
        f"{label:>16}{'added p50':>11}{'added p99':>11}"
    )
    base = {r.connections: r for r in runs if r.target == baseline}
    summary = []
    for r in runs:
        ref = base[r.connections]
        share = 100 * r.requests_per_s / ref.requests_per_s
        add50, add99 = r.p50_ms - ref.p50_ms, r.p99_ms - ref.p99_ms
        print(
            f"{r.target:<12}{r.connections:>6}{r.requests_per_s:>10.0f}{r.p50_ms:>9.2f}"
            f"{r.p99_ms:>9.2f}{r.errors:>9}{share:>15.1f}%{add50:>+11.2f}{add99:>+11.2f}"
        )
        summary.append(
            {
                **asdict(r),
                f"pct_of_{baseline}": round(share, 1),
                "added_p50_ms": round(add50, 3),
                "added_p99_ms": round(add99, 3),
            }
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    machine = {"machine": platform.node(), "cpus": os.cpu_count() or 0}
    out.write_text(json.dumps({**machine, **(extra or {}), "runs": summary}, indent=2))
    print(f"wrote {out}")
