"""What the exact cache costs on the request path, and what a hit gives back.

    .venv/bin/python bench/bench_savings.py [--duration 10] [--connections 32] [--rounds 3]

Starts one fake upstream and three gateways (real processes, SQLite ledger each, embedded
defaults), identical but for the exact cache, and drives each with wrk in the same run,
interleaved round by round:

    none        no savings stage: the pipeline as before the savings engine
    seam        exact cache on in ``opt_in`` mode, requests without the header: the seam's own
                cost (exchange, stage loop, body re-encoding) with a stage that steps aside
    cache-miss  exact cache on; every request distinct (temperature 0), so each one pays the
                whole stage — key hashing, a lookup that misses, keeping the answer and
                storing it after — and still goes upstream: the stage's worst case
    cache-hit   exact cache on; requests cycle over 64 prompts, so nearly all are hits answered
                without an upstream call

Prints req/s, p50 / p99 and the share of the no-savings throughput (medians over the rounds,
each round's share against the same round's baseline), then each gateway's main-thread CPU per
request (/proc: what saturates, and far steadier than req/s on a shared box) and what the
stage adds to it. Writes bench/results/savings.json.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


from tests.support import procs
from wrkbench import (
    CpuSamples,
    Run,
    cpu_rows,
    one_model_gateway,
    parse_args,
    report,
    rotated,
    thread_cpu_s,
    wrk,
)

VARIANTS = ("none", "seam", "cache-miss", "cache-hit")
DISTINCT_HIT_PROMPTS = 64

# The same script shape for every variant: a counter-numbered prompt (distinct for the miss
# and baseline runs; modulo 64 for the hit runs), temperature 0 so the cache may keep it.
_WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
local counter = 0
local template = '{"model":"gpt-4o-mini","temperature":0,"max_tokens":16,' ..
  '"messages":[{"role":"user","content":"Benchmark the savings stages, run %(run)s, ' ..
  'request %%d."}]}'
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, string.format(template, counter %% %(modulo)d))
end
"""


def gateway_config(tmp: Path, variant: str, upstream_port: int) -> dict[str, Any]:
    data = one_model_gateway(tmp, variant, upstream_port)
    if variant == "seam":
        data["savings"] = {"exact_cache": {"enabled": True, "mode": "opt_in"}}
    elif variant != "none":
        data["savings"] = {"exact_cache": {"enabled": True}}  # 10,000 entries: full after ~5 s
    return data


# (variant, connections, round) -> main-thread CPU µs per request
def measure(
    tmp: Path, conns: list[int], seconds: int, rounds: int, cpu: CpuSamples
) -> list[Run]:
    up_port = procs.free_port()
    ports = {variant: procs.free_port() for variant in VARIANTS}
    commands = [(procs.fake_upstream_command(up_port), up_port)]
    keys: dict[str, str] = {}
    for variant in VARIANTS:
        config = procs.write_config(tmp / f"{variant}.yaml", gateway_config(tmp, variant, up_port))
        keys[variant] = procs.create_key(config, "bench-user", "bench-team")
        commands.append((procs.gateway_command(config, ports[variant]), ports[variant]))
    urls = {v: f"http://127.0.0.1:{port}/v1/chat/completions" for v, port in ports.items()}

    def drive(variant: str, connections: int, duration: int, label: str, index: int) -> Run:
        script = tmp / f"{variant}-{label}-{connections}-{index}.lua"
        # Hits reuse one run label so every round asks the same 64 prompts.
        run = "hits" if variant == "cache-hit" else script.stem
        modulo = DISTINCT_HIT_PROMPTS if variant == "cache-hit" else 2**31
        script.write_text(_WRK_SCRIPT % {"key": keys[variant], "run": run, "modulo": modulo})
        before = thread_cpu_s(pids[variant])
        result = wrk(urls[variant], script, connections, duration, label, round_index=index)
        served = result.requests_per_s * duration
        cpu[variant, connections, index] = (thread_cpu_s(pids[variant]) - before) / served * 1e6
        return result

    runs: list[Run] = []
    pids: dict[str, int] = {}
    with procs.spawned_together(commands) as started:
        pids.update(zip(VARIANTS, (p.pid for p in started[1:]), strict=True))
        for variant in VARIANTS:  # warm connection pools and the hit set before measuring
            drive(variant, 8, 2, "warm", 0)
        for index in range(rounds):  # interleaved: a slow spell of the machine hits all
            for c in conns:
                for variant in rotated(VARIANTS, index):
                    runs.append(drive(variant, c, seconds, variant, index))
    return runs


def main() -> int:
    duration, conns, rounds = parse_args()
    cpu: CpuSamples = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        runs = measure(Path(tmpdir), conns, duration, rounds, cpu)
    rows = cpu_rows(cpu, VARIANTS, "none", conns, rounds)
    extra = {"variants": list(VARIANTS), "cpu": rows}
    report(runs, baseline="none", name="savings", extra=extra)
    failed = sum(r.errors for r in runs)
    if failed:
        print(f"{failed} requests were not answered 2xx", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
