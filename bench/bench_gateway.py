"""Gateway overhead: the same load straight to the fake upstream and through costwarden.

    .venv/bin/python bench/bench_gateway.py [--duration 10] [--connections 1,32]

Starts the fake upstream and a gateway (auth + pricing + durable ledger on, SQLite) as real
processes, plus a bare 40-line Python proxy (bench/bare_proxy.py) as a yardstick, drives all
three with wrk (Debian package ``wrk``) in one run, and prints req/s and the latency each adds
over the upstream at p50/p99. Writes bench/results/gateway.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import procs

RESULTS = Path(__file__).resolve().parent / "results"
PATH = "/v1/chat/completions"
BODY = json.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Benchmark the gateway, please."}],
        "max_tokens": 16,
    }
)


@dataclass
class Run:
    target: str
    connections: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def wrk_script(tmp: Path, key: str | None) -> Path:
    auth = f'wrk.headers["Authorization"] = "Bearer {key}"\n' if key else ""
    script = tmp / ("post-keyed.lua" if key else "post.lua")
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(BODY)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n' + auth
    )
    return script


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(url: str, script: Path, connections: int, seconds: int, target: str) -> Run:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # Anchored to the start of a line: the +/- Stdev column also prints percentages.
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Run(target, connections, rps, p50, p99, int(errors.group(1)) if errors else 0)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", default="1,32")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install -y wrk", file=sys.stderr)
        return 2
    conns = [int(c) for c in args.connections.split(",")]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        up_port, gw_port = procs.free_port(), procs.free_port()
        config = procs.write_config(
            tmp / "cw.yaml",
            {
                "ledger": {"sqlite_path": str(tmp / "ledger.db"), "spool_dir": str(tmp / "spool")},
                "models": [
                    {
                        "name": "gpt-4o-mini",
                        "endpoints": [{"api_base": f"http://127.0.0.1:{up_port}/v1"}],
                    }
                ],
            },
        )
        key = procs.create_key(config, "bench", "perf")
        bare_port = procs.free_port()
        bare = [
            sys.executable,
            str(Path(__file__).with_name("bare_proxy.py")),
            f"http://127.0.0.1:{up_port}",
            str(bare_port),
        ]
        targets = {"upstream": up_port, "bare-proxy": bare_port, "costwarden": gw_port}
        with (
            procs.fake_upstream(up_port),
            procs.gateway(config, gw_port),
            procs.spawned(bare, bare_port),
        ):
            scripts = {"costwarden": wrk_script(tmp, key)}
            direct = wrk_script(tmp, None)
            for name, port in targets.items():  # warm pools and caches before measuring
                wrk(f"http://127.0.0.1:{port}{PATH}", scripts.get(name, direct), 8, 2, "warm")
            for c in conns:
                for name, port in targets.items():
                    url = f"http://127.0.0.1:{port}{PATH}"
                    runs.append(wrk(url, scripts.get(name, direct), c, args.duration, name))
    report(runs)
    return 0


def report(runs: list[Run]) -> None:
    print(
        f"{'target':<12}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}"
        f"{'% of upstream':>15}{'added p50':>11}{'added p99':>11}"
    )
    base = {r.connections: r for r in runs if r.target == "upstream"}
    summary = []
    for r in runs:
        up = base[r.connections]
        share = 100 * r.requests_per_s / up.requests_per_s
        add50, add99 = r.p50_ms - up.p50_ms, r.p99_ms - up.p99_ms
        print(
            f"{r.target:<12}{r.connections:>6}{r.requests_per_s:>10.0f}{r.p50_ms:>9.2f}"
            f"{r.p99_ms:>9.2f}{r.errors:>9}{share:>14.1f}%{add50:>+10.2f}{add99:>+11.2f}"
        )
        summary.append(
            {
                **asdict(r),
                "pct_of_upstream": round(share, 1),
                "added_p50_ms": round(add50, 3),
                "added_p99_ms": round(add99, 3),
            }
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "gateway.json"
    out.write_text(
        json.dumps({"machine": platform.node(), "cpus": _cpus(), "runs": summary}, indent=2)
    )
    print(f"wrote {out}")


def _cpus() -> int:
    return os.cpu_count() or 0


if __name__ == "__main__":
    sys.exit(main())
