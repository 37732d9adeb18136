"""PostgreSQL goes away for 30 s under load: the gateways keep answering, and every answered
request reaches the ledger once it is back.

Two real gateway processes write their ledger to a PostgreSQL server of this test's own
(``tests/support/private_postgres``: the shared one serves other tests and is never stopped)
through their spools, with a budget on (shared Redis) so admission runs too. A pool of clients
sends requests continuously; the test stops the server (fast shutdown: connections cut, new
ones refused) for 30 s and starts it again:

* the gateways answer every request meanwhile (the spool holds the records; API keys looked up
  before stay trusted), never a 500;
* the copiers retry with backoff and catch up once the server is back, with nothing lost and
  nothing twice: the client-side request ids of the answered requests are exactly the ledger's.

The figures of one run are in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest

from tests.multiprocess.cluster import ClusterSpec, ledger_entries, running_cluster
from tests.multiprocess.test_replicas import chat_body
from tests.support.load import Load, report
from tests.support.private_postgres import private_postgres

pytestmark = pytest.mark.slow

OUTAGE_S = 30.0
_POLL_S = 0.1


async def _records(dsn: str) -> int | None:
    """Rows in the ledger now; None while the server does not answer."""
    try:
        conn = await asyncpg.connect(dsn, timeout=2)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        return int(await conn.fetchval("SELECT count(*) FROM usage_records"))
    finally:
        await conn.close()


async def _caught_up(dsn: str, at_least: int, timeout_s: float) -> float | None:
    """Seconds until the ledger holds ``at_least`` rows; None if not within ``timeout_s``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        count = await _records(dsn)
        if count is not None and count >= at_least:
            return time.monotonic() - start
        await asyncio.sleep(_POLL_S)
    return None


async def test_postgres_stopped_30s_under_load_loses_no_record(
    tmp_path: Path, redis_url: str, redis_key_prefix: str
) -> None:
    policy = {"budgets": [{"name": "big", "scope": "global", "period": "day", "limit_usd": "1000"}]}
    with private_postgres() as postgres:
        spec = ClusterSpec(postgres.dsn, redis_url, f"{redis_key_prefix}:pgfault", policy)
        with running_cluster(tmp_path, spec, gateways=2) as cluster:
            async with Load(cluster.urls, cluster.key, chat_body(), workers=16) as load:
                assert await load.until(lambda: load.count(200) >= 200, timeout_s=20)
                postgres.stop()
                down_at = time.monotonic()
                await load.until(lambda: time.monotonic() - down_at > OUTAGE_S, timeout_s=40)
                answered_while_down = load.count(200, since=down_at)
                postgres.start()
                back_at = time.monotonic()
                # The copiers find the server again and copy what the spools held, while
                # the load goes on.
                answered_by_now = load.count(200)
                catch_up_s = await _caught_up(postgres.dsn, answered_by_now, timeout_s=20)
            # (the gateways drain their spools into the ledger as they stop)
        entries = await ledger_entries(cluster.settings)

    answers = load.answers
    assert {a.status for a in answers} == {200}  # answered throughout, never a 500
    assert answered_while_down > 100  # the outage really was under load
    assert catch_up_s is not None, "the copiers did not catch up within 20 s of the restart"
    answered = [a.request_id for a in answers]
    assert None not in answered
    # Every answered request is in the ledger, exactly once (request_id is its key), and the
    # ledger holds nothing else.
    assert len(set(answered)) == len(answered)
    assert set(entries) == set(answered)
    assert all(entry.status == "ok" for entry in entries.values())
    report(
        "postgres_stopped_30s",
        {
            "sent": len(answers),
            "answered": len(answered),
            "answered_while_down": answered_while_down,
            "records": len(entries),
            "outage_s": back_at - down_at,
            "caught_up_after_s": catch_up_s,
        },
    )
