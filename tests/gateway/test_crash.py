"""Processes die under load; the ledger still holds every answered request."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from costwarden.config import LedgerConfig
from costwarden.ledger import Ledger
from costwarden.records import Status
from tests.gateway.conftest import StartGateway, base_settings
from tests.support import procs

pytestmark = pytest.mark.slow

BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "crash test"}],
    "max_tokens": 16,
}


async def load(
    url: str,
    key: str,
    seconds: float,
    workers: int,
    *,
    answered: list[str],
    failures: list[str],
    body: dict[str, Any] = BODY,
    milestone: tuple[int, asyncio.Event] | None = None,
) -> None:
    """Post ``body`` from ``workers`` clients for ``seconds``; ``milestone`` (n, event): the
    event is set once n requests were answered."""
    deadline = time.monotonic() + seconds
    headers = {"authorization": f"Bearer {key}"}

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            try:
                async with session.post(url, json=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status == 200:
                        answered.append(resp.headers["x-request-id"])
                        if milestone is not None and len(answered) >= milestone[0]:
                            milestone[1].set()
                    else:
                        failures.append(f"{resp.status}")
            except (aiohttp.ClientError, OSError) as exc:
                failures.append(type(exc).__name__)
                await asyncio.sleep(0.01)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(workers)))


async def test_sigkill_loses_no_answered_request(tmp_path: Path) -> None:
    up_port, gw_port = procs.free_port(), procs.free_port()
    ledger = {
        "sqlite_path": str(tmp_path / "ledger.db"),
        "spool_dir": str(tmp_path / "spool"),
        "flush_interval_s": 30.0,  # nothing reaches the DB before the kill: only the spool has it
    }
    config = procs.write_config(
        tmp_path / "cw.yaml",
        {
            "ledger": ledger,
            "models": [
                {
                    "name": "gpt-4o-mini",
                    "endpoints": [{"api_base": f"http://127.0.0.1:{up_port}/v1"}],
                }
            ],
        },
    )
    key = procs.create_key(config, "loadtest", "qa")
    answered: list[str] = []
    failures: list[str] = []
    with (
        procs.fake_upstream(up_port),
        procs.gateway(config, gw_port, log=tmp_path / "gw.log") as gw,
    ):
        url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        enough = asyncio.Event()
        load_task = asyncio.create_task(
            load(url, key, 8.0, 16, answered=answered, failures=failures, milestone=(60, enough))
        )
        # Kill once enough was answered, not at a fixed time: a slow start-up (a loaded CI
        # machine) must not leave nothing to check. The load goes on failing after the kill.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), timeout=6.0)
        os.kill(gw.pid, signal.SIGKILL)
        await load_task
    assert len(answered) > 50, f"answered {len(answered)}; failures: {failures[:5]}"
    assert failures, "requests after the kill must have failed"
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        in_db_before = db.execute("SELECT count(*) FROM usage_records").fetchone()[0]
    assert in_db_before < len(answered)  # so the spool replay below is what saves them

    recovered = await Ledger.open(LedgerConfig(**ledger))
    try:
        await recovered.flush()
        missing = [rid for rid in answered if await recovered.store.get_record(rid) is None]
    finally:
        await recovered.close()
    assert missing == []


async def test_killing_one_of_two_replicas_fails_no_request(
    tmp_path: Path, start_gateway: StartGateway
) -> None:
    port_a, port_b = procs.free_port(), procs.free_port()
    replicas = {
        "name": "gpt-4o-mini",
        "endpoints": [
            {"id": "replica-a", "api_base": f"http://127.0.0.1:{port_a}/v1"},
            {"id": "replica-b", "api_base": f"http://127.0.0.1:{port_b}/v1"},
        ],
    }
    settings = base_settings(
        tmp_path,
        [replicas],
        health={"failures_to_eject": 1},
        retry={"max_attempts": 3, "backoff_base_s": 0.001},
    )
    with procs.fake_upstream(port_a) as replica_a, procs.fake_upstream(port_b):
        gw = await start_gateway(settings)
        answered: list[str] = []
        failures: list[str] = []
        url = f"{gw.url}/v1/chat/completions"
        load_task = asyncio.create_task(
            load(url, gw.key, 2.5, 8, answered=answered, failures=failures)
        )
        await asyncio.sleep(0.8)
        os.kill(replica_a.pid, signal.SIGKILL)
        await load_task
    assert failures == []
    assert len(answered) > 50
    await gw.services.ledger.flush()
    records = [await gw.services.ledger.store.get_record(rid) for rid in answered]
    assert all(r is not None and r.status is Status.OK for r in records)
    retried = [r for r in records if r is not None and len(r.attempts) > 1]
    assert retried, "requests in flight on the killed replica were retried"
    for record in retried:
        assert record.attempts[0].endpoint == "replica-a" and record.attempts[0].error
        assert record.attempts[-1].endpoint == "replica-b"
    served_by_b_after = [
        r for r in records if r is not None and r.attempts[-1].endpoint == "replica-b"
    ]
    assert len(served_by_b_after) > len(retried)
