"""What admission + settlement cost in CPU instructions, counted (not timed), per code version.

    apt-get install -y valgrind
    git archive HEAD~1 src | tar -x -C /tmp/before
    .venv/bin/python bench/count_instructions.py --tree before=/tmp/before/src --tree now=src \\
        [--requests 300] [--backend memory,redis]

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

``--backend redis`` counts the gateway's side of the Redis backend instead (counters in Redis,
$COSTWARDEN_BENCH_REDIS_URL, under a fresh key prefix): the requests are admitted in batches of
8 through ``PolicyEngine.admit_many``, each batch's call settling the batch before it, as the
gateway does under load — building the plans, packing the call, the client's socket I/O in
user space, decoding the replies. Not counted: redis-server (another process) and the kernel's
side of the two system calls a batch makes. With both (``--backend memory,redis``) each tree
is counted on each, one row apiece.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
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
import redis
from bench_controls import REDIS_URL, bench_request, delete_keys, gateway_config
from tests.support import procs
from wrkbench import write_results

from costwarden.config import load_settings
from costwarden.gateway.admission import Admitter
from costwarden.gateway.services import Services, build_services
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


class _InProcess:
    """The in-process backend's path: each request admitted at once, settled in batches."""

    def __init__(self, services: Services, admitter: Admitter) -> None:
        self._services, self._admitter, self.batch = services, admitter, list[Any]()

    def add(self, request: Any) -> None:
        self.batch.append((self._admitter.admit_now(request), _COST, 36))

    async def step(self) -> None:
        self._services.policy.settle_many_now(self.batch)
        _drop(self._services, self.batch)
        self.batch = []

    async def finish(self) -> None:
        """Settle the last, partial batch."""
        await self.step()


class _OnRedis:
    """The Redis backend's path under load: a batch admitted in one call that settles the
    batch before it."""

    def __init__(self, services: Services, admitter: Admitter) -> None:
        self._services, self.batch, self._previous = services, list[Any](), list[Any]()

    def add(self, request: Any) -> None:
        self.batch.append(request)

    async def step(self) -> None:
        admitted = await self._services.policy.admit_many(self.batch, self._previous)
        _drop(self._services, self._previous)
        self._previous, self.batch = [(a, _COST, 36) for a in admitted], []

    async def finish(self) -> None:
        """Admit the last, partial batch; settle it."""
        if self.batch:
            await self.step()
        await self._services.policy.settle_many(self._previous)
        _drop(self._services, self._previous)


def _drop(services: Services, settled: list[Any]) -> None:
    for admission, _, _ in settled:
        services.leases.drop(admission)


async def _child(backend: str, controls: bool, requests: int, prefix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = procs.write_config(
            Path(tmp) / "g.yaml", gateway_config(Path(tmp), backend, 9, prefix)
        )
        services = await build_services(load_settings(config))
        admitter = services.admitter()
        driver = (_OnRedis if backend == "redis" else _InProcess)(services, admitter)
        principal = Principal(key_id="k1", user="bench-user", team="bench-team")
        created = utcnow()
        for i in range(_WARM_UP + requests):
            body, raw, record = bench_request(i, principal, created)
            counted = i >= _WARM_UP
            if counted:
                _evict()
            if controls or not counted:
                driver.add(admitter.request("chat.completions", body, raw, record, 16))
            if counted and (i + 1) % _BATCH == 0:
                _evict()
            if len(driver.batch) == _BATCH or (not counted and driver.batch):
                await driver.step()
        await driver.finish()
        await services.close()


def _count(tree: Path, backend: str, controls: bool, requests: int) -> dict[str, int]:
    env = dict(os.environ, PYTHONPATH=f"{tree.resolve()}{os.pathsep}{ROOT}", PYTHONHASHSEED="0")
    prefix = "instructions-" + secrets.token_hex(4)
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            "valgrind", "--tool=cachegrind", "--cache-sim=yes",
            f"--cachegrind-out-file={tmp}/out", sys.executable, __file__,
            "--child", "controls" if controls else "baseline", "--requests", str(requests),
            "--backend", backend, "--prefix", prefix,
        ]  # fmt: skip
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    if backend == "redis":  # here, not in the counted process
        client = redis.Redis.from_url(REDIS_URL)
        delete_keys(client, prefix)
        client.close()
    totals = {_EVENTS[m[1]]: int(m[2].replace(",", "")) for m in _TOTAL.finditer(done.stderr)}
    if set(totals) != set(_EVENTS.values()):
        raise SystemExit(f"no cachegrind totals in:\n{done.stderr[-2000:]}")
    return totals


def measure(tree: Path, backend: str, requests: int) -> dict[str, float]:
    """Per request: what the controls' run executed beyond the baseline's (the two run side
    by side, one per core)."""
    with ThreadPoolExecutor(2) as pool:
        runs = pool.map(lambda controls: _count(tree, backend, controls, requests), (True, False))
        with_controls, baseline = runs
    return {k: (with_controls[k] - baseline[k]) / requests for k in with_controls}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", help="NAME=PATH to a src/")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--backend", default="memory", help="memory, redis or memory,redis")
    parser.add_argument("--child", choices=("controls", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="instructions", help=argparse.SUPPRESS)
    args = parser.parse_args()
    backends = args.backend.split(",")
    if not set(backends) <= {"memory", "redis"}:
        parser.error("--backend: memory, redis or both, comma-separated")
    if args.child:
        asyncio.run(_child(args.backend, args.child == "controls", args.requests, args.prefix))
        return 0
    if not args.tree:
        parser.error("give at least one --tree NAME=PATH")
    if shutil.which("valgrind") is None:
        print("valgrind is needed: apt-get install -y valgrind", file=sys.stderr)
        return 2
    trees = dict(spec.split("=", 1) for spec in args.tree)
    results = {
        name if len(backends) == 1 else f"{name}/{backend}": measure(
            Path(path), backend, args.requests
        )
        for name, path in trees.items()
        for backend in backends
    }
    first = next(iter(results.values()))
    print(f"per admit + settle, {args.requests} requests, every control, caches evicted")
    print(f"{'tree':<14} {'instructions':>13} {'vs first':>9} {'I1 misses':>10} {'vs first':>9}")
    for name, counts in results.items():
        ir, i1 = counts["instructions"], counts["i1_misses"]
        print(
            f"{name:<14} {ir:>13,.0f} {ir / first['instructions'] - 1:>+9.1%}"
            f" {i1:>10,.0f} {i1 / first['i1_misses'] - 1:>+9.1%}"
        )
    document = {"requests": args.requests, "backends": backends, "trees": results}
    write_results("instructions", document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
