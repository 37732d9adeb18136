"""Gateway overhead: the same load straight to the fake upstream and through costwarden.

    .venv/bin/python bench/bench_gateway.py [--duration 10] [--connections 1,32]

Starts the fake upstream and a gateway (auth + pricing + durable ledger on, SQLite) as real
processes, plus a bare 40-line Python proxy (bench/bare_proxy.py) as a yardstick, drives all
three with wrk (Debian package ``wrk``) in one run, and prints req/s and the latency each adds
over the upstream at p50/p99. Writes bench/results/gateway.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.support import procs
from wrkbench import Run, parse_args, report, wrk

PATH = "/v1/chat/completions"
BODY = json.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Benchmark the gateway, please."}],
        "max_tokens": 16,
    }
)


def wrk_script(tmp: Path, key: str | None) -> Path:
    auth = f'wrk.headers["Authorization"] = "Bearer {key}"\n' if key else ""
    script = tmp / ("post-keyed.lua" if key else "post.lua")
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(BODY)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n' + auth
    )
    return script


def main() -> int:
    duration, conns, rounds = parse_args()
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
            for index in range(rounds):  # interleaved: a slow spell of the machine hits all
                for c in conns:
                    for name, port in targets.items():
                        url = f"http://127.0.0.1:{port}{PATH}"
                        script = scripts.get(name, direct)
                        runs.append(wrk(url, script, c, duration, name, round_index=index))
    report(runs, baseline="upstream", name="gateway")
    return 0


if __name__ == "__main__":
    sys.exit(main())
