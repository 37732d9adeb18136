"""Redis goes away, and comes back without its data, under load: no cap is ever passed.

Two real gateway processes share a Redis of this test's own (``tests/support/private_redis``:
the shared one serves other tests and is never stopped) and a PostgreSQL ledger, with one
global budget. A pool of clients sends requests continuously while the test kills Redis
(SIGKILL, no persistence: a restart is empty, as after a crash or a failover to an empty
replica) and starts it again:

* while Redis is down every admission is refused at once with a 503 ``counters_unavailable``
  (``state.on_unavailable: fail_closed``), never admitted unchecked and never a 500;
* after the restart the counters are re-seeded from the ledger before the first admission, so
  the budget is not reset: the spend the ledger records over the whole run stays within the
  cap, although the load would have spent it several times over;
* the gateways recover by themselves, and every answered request is in the ledger.

The figures of one run are in docs/reliability.md.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.multiprocess.cluster import ClusterSpec, fresh_database, ledger_entries, running_cluster
from tests.multiprocess.test_replicas import UNIT, chat_body, request_cost, spend
from tests.support.load import Load, first_after, report
from tests.support.private_redis import private_redis

pytestmark = pytest.mark.slow

REQUESTS_OF_BUDGET = 400  # the cap, in requests at their actual cost
OUTAGE_S = 3.0


@pytest.fixture
async def fault_dsn(postgres_dsn: str) -> AsyncIterator[str]:
    """A database of this test's own on the shared server (which is never stopped)."""
    session_database = urlsplit(postgres_dsn).path.lstrip("/")
    async with fresh_database(postgres_dsn, f"{session_database}_{secrets.token_hex(3)}") as dsn:
        yield dsn


async def test_redis_killed_and_restarted_empty_under_load_keeps_the_cap(
    tmp_path: Path, fault_dsn: str
) -> None:
    cost = request_cost()
    cap = (cost.actual * REQUESTS_OF_BUDGET).quantize(UNIT)
    policy = {
        "budgets": [{"name": "cap", "scope": "global", "period": "day", "limit_usd": str(cap)}]
    }
    with private_redis(tmp_path / "redis") as redis:
        spec = ClusterSpec(fault_dsn, redis.url, "cwfault", policy)
        with running_cluster(tmp_path, spec, gateways=2) as cluster:
            async with Load(cluster.urls, cluster.key, chat_body(), workers=16) as load:
                # Spend ~60 % of the budget, then take Redis away.
                assert await load.until(lambda: load.count(200) >= 240, timeout_s=20)
                redis.stop()
                down_at = time.monotonic()
                await load.until(lambda: time.monotonic() - down_at > OUTAGE_S, timeout_s=10)
                redis.start()  # empty: every counter and lease is gone
                back_at = time.monotonic()
                # The cap must be reached again from what the ledger says was spent.
                assert await load.until(
                    lambda: load.count(429, since=back_at, code="budget_exceeded") >= 50,
                    timeout_s=20,
                )
                # A second loss, with the budget spent: it must stay spent.
                redis.stop()
                redis.start()
                second_at = time.monotonic()
                await load.until(lambda: time.monotonic() - second_at > 2.0, timeout_s=5)
        entries = await ledger_entries(cluster.settings)

    answers = load.answers
    statuses = {a.status for a in answers}
    assert statuses <= {200, 429, 503}, statuses  # never a 500, never a dropped connection
    during = [a for a in answers if down_at + 0.5 < a.at < back_at]
    assert during and all(a.status == 503 for a in during), {a.status for a in during}
    assert all(a.code == "counters_unavailable" for a in answers if a.status == 503)
    assert load.count(200, since=back_at) > 0  # recovered by itself
    # After the second loss the budget stays spent: only what in-flight reservations held
    # back (worst case over actual) is left to admit, not the fresh budget a reset would give.
    assert load.count(200, since=second_at) < REQUESTS_OF_BUDGET // 10
    # The invariant: what the ledger records as spent never passes the cap ...
    assert spend(entries) <= cap
    # ... although, had the restart reset the budget, it would have (60 % + 100 %).
    assert spend(entries) >= cost.actual * 240
    # Every answered request is on record, once.
    answered = [a.request_id for a in answers if a.status == 200]
    assert len(set(answered)) == len(answered)
    assert all(entries[rid].status == "ok" for rid in answered)
    report(
        "redis_killed_and_restarted_empty",
        {
            "sent": len(answers),
            "answered": load.count(200),
            "refused_503": load.count(503),
            "refused_budget": load.count(429, code="budget_exceeded"),
            "records": len(entries),
            "spend": spend(entries),
            "cap": cap,
            "recovered_after_s": first_after(load, 200, back_at),
        },
    )
