"""The gateway's admit + settle path alone, compared between versions of the code, in process.

    git archive HEAD~3 src | tar -x -C /tmp/before
    .venv/bin/python bench/compare_admitter.py --tree before=/tmp/before/src --tree now=src \\
        [--rounds 6] [--ops 10000] [--cold]

For each round and each ``--tree`` (interleaved, each run in a fresh process with
``PYTHONPATH=<tree>``), builds the gateway's real services for the in-process backend with
every control of ``bench_controls.py`` and times ``Admitter`` admission and settlement of
``--ops`` requests with distinct prompts over 64 sessions (the settlement batch runs in the
next loop iteration, so two ``sleep(0)`` are timed with it; their own cost is subtracted).
``--cold`` overwrites an 8 MB buffer before each timed call, as the rest of a live request
evicts the caches. Prints medians per tree. Far steadier than wrk on a shared machine for
effects of a few µs (warm: two runs of the same tree agree within ~1 µs), but it leaves out
uvicorn, aiohttp and the ledger: confirm with ``compare_trees.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# In a --child these come from the tree under test (PYTHONPATH goes before the install).
from bench_controls import gateway_config
from tests.support import procs

from costwarden.config import load_settings
from costwarden.gateway.admission import Admitter
from costwarden.gateway.services import build_services
from costwarden.records import Principal, Tags, TokenUsage, UsageRecord, utcnow

ROOT = Path(__file__).resolve().parent.parent
_EVICT = bytearray(8 * 1024 * 1024)
_RESULT = re.compile(r"admit ([\d.]+) settle ([-\d.]+)")


def _evict() -> None:
    _EVICT[::64] = b"\x01" * (len(_EVICT) // 64)


async def _run_one(ops: int, cold: bool) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        config = gateway_config(Path(tmp), "memory", 9, "admitter")
        services = await build_services(
            load_settings(procs.write_config(Path(tmp) / "g.yaml", config))
        )
        admitter = Admitter(
            services.policy,
            prices=services.prices,
            tokens=services.tokens,
            router=services.router,
            leases=services.leases,
            settlements=services.settlements,
        )
        principal = Principal(key_id="k1", user="bench-user", team="bench-team")
        admit_ns: list[int] = []
        settle_ns: list[int] = []
        idle_ns: list[int] = []
        for i in range(ops):
            raw = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"request %d"}]}' % i
            body: dict[str, Any] = {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"request {i}"}],
            }
            record = UsageRecord(
                request_id=str(i), created_at=utcnow(), api="chat.completions",
                requested_model="gpt-4o-mini", principal=principal,
                tags=Tags(session=f"bench-{i % 64}"), resolved_model="gpt-4o-mini",
            )  # fmt: skip
            admission, took_ns = await _admit(admitter, body, raw, record, cold)
            admit_ns.append(took_ns)
            record.attempts.append(object())  # type: ignore[arg-type]  # reached an upstream
            record.cost = Decimal("0.0000123")
            record.usage = TokenUsage(input_tokens=20, output_tokens=16)
            if cold:
                _evict()
            started = time.perf_counter_ns()
            done = admitter.settle(admission, record)  # type: ignore[func-returns-value]
            if done is not None:  # an older tree's coroutine
                await done
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            settle_ns.append(time.perf_counter_ns() - started)
            if cold:
                _evict()
            started = time.perf_counter_ns()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            idle_ns.append(time.perf_counter_ns() - started)
        await services.close()
    warm = ops // 5  # skip the first fifth: caches filling, plans compiling
    idle = statistics.median(idle_ns[warm:])
    return (
        statistics.median(admit_ns[warm:]) / 1000,
        (statistics.median(settle_ns[warm:]) - idle) / 1000,
    )


async def _admit(
    admitter: Any, body: dict[str, Any], raw: bytes, record: Any, cold: bool
) -> tuple[Any, int]:
    """Whichever API the tree has: ``request`` + ``admit_now`` / ``admit``, or ``admit``."""
    if cold:
        _evict()
    started = time.perf_counter_ns()
    if hasattr(admitter, "request"):
        request = admitter.request("chat.completions", body, raw, record, None)
        if admitter.immediate:
            admission = admitter.admit_now(request)
        else:
            admission = await admitter.admit(request)
    else:
        admission = await admitter.admit("chat.completions", body, raw, record, None)
    return admission, time.perf_counter_ns() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", help="NAME=PATH to a src/")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--ops", type=int, default=10000)
    parser.add_argument("--cold", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        admit_us, settle_us = uvloop.run(_run_one(args.ops, args.cold))
        print(f"admit {admit_us:.2f} settle {settle_us:.2f}")
        return 0
    if not args.tree:
        parser.error("give at least one --tree NAME=PATH")
    trees = dict(spec.split("=", 1) for spec in args.tree)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    command = [sys.executable, __file__, "--child", "--ops", str(args.ops)]
    for _ in range(args.rounds):
        for name, path in trees.items():
            env = dict(os.environ, PYTHONPATH=f"{Path(path).resolve()}{os.pathsep}{ROOT}")
            out = subprocess.run(
                command + (["--cold"] if args.cold else []), env=env, check=True,
                capture_output=True, text=True, cwd=tempfile.gettempdir(),
            ).stdout  # fmt: skip
            match = _RESULT.search(out)
            if match is None:
                raise SystemExit(f"{name}: no result in {out!r}")
            runs[name].append((float(match.group(1)), float(match.group(2))))
    print(f"{'cold' if args.cold else 'warm'}, {args.rounds} rounds of {args.ops} requests")
    print(f"{'tree':<10} {'admit µs':>9} {'settle µs':>10} {'total µs':>9}  totals per round")
    for name, values in runs.items():
        admit = statistics.median(v[0] for v in values)
        settle = statistics.median(v[1] for v in values)
        totals = " ".join(f"{a + s:.1f}" for a, s in values)
        print(f"{name:<10} {admit:>9.1f} {settle:>10.1f} {admit + settle:>9.1f}  {totals}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
