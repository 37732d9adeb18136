"""What admission + settlement cost in CPU instructions, counted (not timed), per code version.

    apt-get install -y valgrind
    git archive HEAD~1 src | tar -x -C /tmp/before
    .venv/bin/python bench/count_instructions.py --tree before=/tmp/before/src --tree now=src \\
        [--requests 300]

Timings on a shared 2-vCPU machine move by more than the effects being measured (the live
gateway's added µs per request read +30 in one run and +57 in the next for the same two
trees). Instruction counts do not: each ``--tree`` (run with ``PYTHONPATH=<tree>``) is run twice
under valgrind's cachegrind, once admitting and settling ``--requests`` requests with every
control of ``bench_controls.py`` on the in-process backend, once doing everything else the
same (building the requests, evicting the caches) without them; the difference divided by
the requests is what the controls execute per request. Requests are settled in batches of 8,
as the gateway's per-iteration batches do, and a 3 MB buffer is overwritten before each
admission and each batch, so that code and data are evicted between them as in the serving
process. Prints instructions (Ir) and simulated first-level instruction-cache misses per
request (the live gateway runs this code cold: fewer instructions and less code touched is
what makes it cheaper there). Repeat runs of one tree agree within ~0.5 %. Writes
bench/results/instructions.json. Takes ~2 minutes per tree.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# In a --child these come from the tree under test (PYTHONPATH goes before the install).
from bench_controls import bench_request, gateway_config
from tests.support import procs
from wrkbench import write_results

from costwarden.config import load_settings
from costwarden.gateway.services import build_services
from costwarden.records import Principal, utcnow

ROOT = Path(__file__).resolve().parent.parent
_EVICT = bytearray(3 * 1024 * 1024)
_WARM_UP = 200  # requests before the counted part: plans compiled, counters created
_BATCH = 8  # settlements per batch, about what one event-loop iteration gathers at 32 conns
_COST = Decimal("0.0000123")
_EVENTS = {"I   refs": "instructions", "I1  misses": "i1_misses"}
_TOTAL = re.compile(r"==\d+== (I   refs|I1  misses):\s+([\d,]+)")


def _evict() -> None:
    _EVICT[::64] = b"\x01" * (len(_EVICT) // 64)


async def _child(controls: bool, requests: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = procs.write_config(
            Path(tmp) / "g.yaml", gateway_config(Path(tmp), "memory", 9, "instructions")
        )
        services = await build_services(load_settings(config))
        admitter, engine = services.admitter(), services.policy
        principal = Principal(key_id="k1", user="bench-user", team="bench-team")
        created = utcnow()

        batch: list[Any] = []
        for i in range(_WARM_UP + requests):
            body, raw, record = bench_request(i, principal, created)
            counted = i >= _WARM_UP
            if counted:
                _evict()
            if controls or not counted:
                request = admitter.request("chat.completions", body, raw, record, 16)
                batch.append((admitter.admit_now(request), _COST, 36))
            if counted and (i + 1) % _BATCH == 0:
                _evict()
            if len(batch) == _BATCH or (not counted and batch):
                engine.settle_many_now(batch)
                for admission, _, _ in batch:
                    services.leases.drop(admission)
                batch = []
        await services.close()


def _count(tree: Path, controls: bool, requests: int) -> dict[str, int]:
    env = dict(os.environ, PYTHONPATH=f"{tree.resolve()}{os.pathsep}{ROOT}", PYTHONHASHSEED="0")
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            "valgrind", "--tool=cachegrind", "--cache-sim=yes",
            f"--cachegrind-out-file={tmp}/out", sys.executable, __file__,
            "--child", "controls" if controls else "baseline", "--requests", str(requests),
        ]  # fmt: skip
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    totals = {_EVENTS[m[1]]: int(m[2].replace(",", "")) for m in _TOTAL.finditer(done.stderr)}
    if set(totals) != set(_EVENTS.values()):
        raise SystemExit(f"no cachegrind totals in:\n{done.stderr[-2000:]}")
    return totals


def measure(tree: Path, requests: int) -> dict[str, float]:
    """Per request: what the controls' run executed beyond the baseline's (the two run side
    by side, one per core)."""
    with ThreadPoolExecutor(2) as pool:
        runs = pool.map(lambda controls: _count(tree, controls, requests), (True, False))
        with_controls, baseline = runs
    return {k: (with_controls[k] - baseline[k]) / requests for k in with_controls}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", help="NAME=PATH to a src/")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--child", choices=("controls", "baseline"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(_child(args.child == "controls", args.requests))
        return 0
    if not args.tree:
        parser.error("give at least one --tree NAME=PATH")
    if shutil.which("valgrind") is None:
        print("valgrind is needed: apt-get install -y valgrind", file=sys.stderr)
        return 2
    trees = dict(spec.split("=", 1) for spec in args.tree)
    results = {name: measure(Path(path), args.requests) for name, path in trees.items()}
    first = next(iter(results.values()))
    print(f"per admit + settle, {args.requests} requests, every control, caches evicted")
    print(f"{'tree':<10} {'instructions':>13} {'vs first':>9} {'I1 misses':>10} {'vs first':>9}")
    for name, counts in results.items():
        ir, i1 = counts["instructions"], counts["i1_misses"]
        print(
            f"{name:<10} {ir:>13,.0f} {ir / first['instructions'] - 1:>+9.1%}"
            f" {i1:>10,.0f} {i1 / first['i1_misses'] - 1:>+9.1%}"
        )
    write_results("instructions", {"requests": args.requests, "trees": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
