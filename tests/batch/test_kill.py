"""A few thousand items, four worker processes, one SIGKILLed and one SIGTERMed mid-run, both
restarted: every item ends done exactly once (or failed within the budget), the results file
has each custom_id once, and the ledger holds one priced record per done item."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from costwarden.batch.backends import open_queue
from costwarden.batch.models import JobCounts, JobStatus
from costwarden.config import Settings, load_settings
from costwarden.ledger import Ledger
from costwarden.records import UsageRecord
from tests.batch.conftest import MODEL
from tests.batch.test_worker import OUTPUT_TOKENS, PROMPT, unit_price
from tests.support import procs

pytestmark = pytest.mark.slow

ITEMS = 3000
FAILING = 15  # every 200th item is refused by the upstream (400): 0.5 %, inside a 1 % budget
WORKERS = 4
DEADLINE_S = 90.0


def write_inputs(path: Path) -> None:
    lines = []
    for n in range(ITEMS):
        body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}
        if n % (ITEMS // FAILING) == 0:
            body["x_fake"] = {"status": 400}
        lines.append(
            orjson.dumps(
                {
                    "custom_id": f"q-{n}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": body,
                }
            )
        )
    path.write_bytes(b"\n".join(lines) + b"\n")


def cli(config: Path, *args: str) -> str:
    command = [sys.executable, "-m", "costwarden", *args, "--config", str(config)]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def log_tail(log: Path, lines: int = 40) -> str:
    """The end of a worker's log, for the message of an assertion on its exit status."""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def start_worker(config: Path, job_id: str, log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "costwarden",
        "batch",
        "worker",
        "--config",
        str(config),
        "--job",
        job_id,
        "--concurrency",
        "8",
        "--notice-s",
        "2",
    ]
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


async def counts_of(settings: Settings, job_id: str) -> tuple[str, JobCounts]:
    queue = await open_queue(settings)
    try:
        job = await queue.jobs.get(job_id)
        assert job is not None
        return job.status, await queue.jobs.counts(job_id)
    finally:
        await queue.close()


async def wait_for_finished(settings: Settings, job_id: str, share: float) -> JobCounts:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        status, counts = await counts_of(settings, job_id)
        if counts.finished >= share * ITEMS or status != JobStatus.RUNNING:
            return counts
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} stalled at {counts}")


async def all_records(settings: Settings) -> list[UsageRecord]:
    ledger = await Ledger.open(settings.ledger)  # adopts the killed worker's spool segments
    try:
        await ledger.flush()
        return await ledger.store.list_records(None, None, None, 1_000_000)
    finally:
        await ledger.close()


async def test_killed_and_preempted_workers_lose_nothing_and_pay_once(tmp_path: Path) -> None:
    port = procs.free_port()
    upstream_cmd = [*procs.fake_upstream_command(port, 2), "--latency-ms", "40"]
    config = procs.write_config(
        tmp_path / "config.yaml",
        {
            "ledger": {
                "sqlite_path": str(tmp_path / "ledger.db"),
                "spool_dir": str(tmp_path / "spool"),
                "flush_interval_s": 0.05,
            },
            "batch": {
                "sqlite_path": str(tmp_path / "batch.db"),
                "lease_s": 3,
                "heartbeat_s": 0.5,
                "reconcile_after_s": 2,
                "backoff_base_s": 0.05,
            },
            "models": [{"name": MODEL, "endpoints": [{"api_base": f"http://127.0.0.1:{port}/v1"}]}],
        },
    )
    settings = load_settings(config)
    inputs = tmp_path / "inputs.jsonl"
    write_inputs(inputs)
    out = cli(
        config,
        "batch",
        "submit",
        str(inputs),
        "--failure-budget",
        "0.01",
        "--user",
        "carol",
        "--team",
        "data",
        "--feature",
        "backfill",
    )
    job_id = out.split("job id:")[1].split()[0]
    logs = tmp_path / "logs"
    logs.mkdir()
    with procs.spawned(upstream_cmd, port, log=logs / "upstream.log"):
        workers = [start_worker(config, job_id, logs / f"w{n}.log") for n in range(WORKERS)]
        try:
            before = await wait_for_finished(settings, job_id, 0.25)
            workers[0].send_signal(signal.SIGKILL)  # a crash: its leases must run out
            workers[1].send_signal(signal.SIGTERM)  # a spot notice: drain and exit 0
            assert workers[0].wait(10) == -signal.SIGKILL
            assert workers[1].wait(10) == 0, log_tail(logs / "w1.log")
            mid = (await counts_of(settings, job_id))[1]
            assert before.finished < ITEMS and mid.pending > 0  # they stopped mid-run
            workers += [start_worker(config, job_id, logs / f"w{n}.log") for n in (4, 5)]
            await wait_for_finished(settings, job_id, 1.0)
            for worker in workers[2:]:
                assert worker.wait(DEADLINE_S) == 0  # each leaves once the job is finished
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()

    status, counts = await counts_of(settings, job_id)
    assert status == JobStatus.DONE
    assert (counts.done, counts.failed, counts.cancelled) == (ITEMS - FAILING, FAILING, 0)
    results = tmp_path / "results.jsonl"
    cli(config, "batch", "results", job_id, "-o", str(results))
    kept = check_results(results)
    await check_ledger(settings, kept, counts)


def check_results(results: Path) -> set[str]:
    """Each custom_id once; the ledger request ids of the answered ones."""
    lines = [orjson.loads(line) for line in results.read_bytes().splitlines()]
    assert sorted(line["custom_id"] for line in lines) == sorted(f"q-{n}" for n in range(ITEMS))
    answered = [line for line in lines if line["response"] is not None]
    assert len(answered) == ITEMS - FAILING
    assert all(line["response"]["status_code"] == 200 for line in answered)
    return {line["response"]["request_id"] for line in answered}


async def check_ledger(settings: Settings, kept: set[str], counts: JobCounts) -> None:
    records = await all_records(settings)
    ok = [r for r in records if r.status == "ok" and r.error_type is None]
    assert sorted(r.request_id for r in ok) == sorted(kept)  # one priced record per done item
    price = unit_price(settings, batch=False)
    assert all(r.cost == price and r.usage.output_tokens == OUTPUT_TOKENS for r in ok)
    assert sum((r.cost for r in ok if r.cost is not None), Decimal(0)) == counts.cost
    assert counts.cost == price * (ITEMS - FAILING)
    assert all(r.principal is not None and r.principal.team == "data" for r in records)
    # Everything else on record is a try that reached the upstream and was not kept: the
    # refused ones, tries cut off by the kill or the notice, or a result whose lease was lost.
    kept_ids = {r.request_id for r in ok}
    others = [r for r in records if r.request_id not in kept_ids]
    assert {r.status for r in others} <= {"upstream_error", "interrupted", "ok"}
    assert len([r for r in others if r.status == "upstream_error"]) == FAILING
    assert all(r.cost is None for r in others if r.status == "interrupted")
    assert not [r for r in records if r.status == "in_flight"]
