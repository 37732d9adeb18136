"""Dashboard page render times on a 10-million-record SQLite ledger.

    .venv/bin/python bench/bench_dashboard.py [--db /tmp/costwarden-dashboard-10m.db]
        [--records 10000000] [--days 45] [--runs 5] [--rebuild]

Builds the ledger once (``dashboard_ledger.py``: ~2000 users, 40 teams, 10 features, 3 envs,
8 models, Zipf-skewed volumes; rollups refreshed as the gateway's job does) and keeps it at
``--db`` (outside the repository), so reruns only render. Each page is rendered through the
dashboard's real ASGI handler, authenticated with the admin key as a bearer token, with the
clock set to the ledger's end: the first render of each page on a freshly opened store (cold:
no SQLite page cache of this process, though the OS file cache may be warm), then ``--runs``
more (warm); prints median and max per page and writes bench/results/dashboard.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard_ledger import build_ledger, ledger_end
from wrkbench import write_results

from costwarden.config import settings_from_dict
from costwarden.dashboard.routes import Dashboard
from costwarden.ledger.sqlite import SqliteStore
from costwarden.policy.engine import PolicyEngine
from costwarden.state.memory import MemoryStateBackend

ADMIN_KEY = "bench-admin-key"
PAGES = (
    ("overview 24h by hour", "/dashboard?range=24h"),
    ("overview 7d by hour", "/dashboard?range=7d"),
    ("overview 30d by day, by team", "/dashboard?range=30d&stack=team"),
    ("overview 30d, grain=hour asked (by day)", "/dashboard?range=30d&grain=hour"),
    ("users 30d (top 20)", "/dashboard/breakdown/user?range=30d"),
    ("users 30d, all, by name", "/dashboard/breakdown/user?range=30d&top=all&sort=value"),
    ("teams 7d", "/dashboard/breakdown/team?range=7d"),
    ("features 30d", "/dashboard/breakdown/feature?range=30d"),
    ("environments 7d", "/dashboard/breakdown/env?range=7d"),
    ("models 30d", "/dashboard/breakdown/model?range=30d"),
    ("drill-down: top user 7d", "/dashboard/scope?dim=user&value=user-0000&range=7d"),
    ("drill-down: small user 30d", "/dashboard/scope?dim=user&value=user-1999&range=30d"),
    ("drill-down: team 30d", "/dashboard/scope?dim=team&value=team-01&range=30d"),
    ("request record", "/dashboard/request/cw-bench000000000001"),
    ("budgets (global, per team, per user)", "/dashboard/budgets"),
    ("events 30d", "/dashboard/events?range=30d"),
)
BUDGETS = [
    {"name": "company", "limit_usd": "12000"},
    {"name": "per-team", "scope": {"team": "*"}, "limit_usd": "3000"},
    {"name": "per-user", "scope": {"user": "*"}, "limit_usd": "300"},
    {"name": "gpt-4o", "scope": {"model": "gpt-4o"}, "limit_usd": "4000"},
    {"name": "daily-team-01", "scope": {"team": "team-01"}, "period": "day", "limit_usd": "200"},
]


async def render(dashboard: Dashboard, target: str) -> tuple[int, int, float]:
    """(status, body bytes, seconds) of one GET through the ASGI handler."""
    path, _, query = target.partition("?")
    scope = {
        "type": "http", "method": "GET", "path": path, "query_string": query.encode(),
        "headers": [(b"authorization", f"Bearer {ADMIN_KEY}".encode())], "scheme": "http",
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    start = time.perf_counter()
    await dashboard.handle(scope, receive, send)
    elapsed = time.perf_counter() - start
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(sent[0]["status"]), len(body), elapsed


def dashboard_on(store: SqliteStore, end: datetime) -> Dashboard:
    settings = settings_from_dict({"policy": {"budgets": BUDGETS}})
    policy = PolicyEngine(settings.policy, MemoryStateBackend(), clock=end.timestamp)
    clock: Callable[[], datetime] = lambda: end  # noqa: E731 - the ledger's "now"
    return Dashboard(settings.dashboard, store, policy, ADMIN_KEY, clock)


async def measure(db: Path, end: datetime, runs: int) -> list[dict[str, Any]]:
    rows = []
    for name, target in PAGES:
        store = SqliteStore(db)  # a fresh connection per page: its first render is cold
        try:
            dashboard = dashboard_on(store, end)
            status, size, cold = await render(dashboard, target)
            warm = [(await render(dashboard, target))[2] for _ in range(runs)]
        finally:
            await store.close()
        if status != 200:
            raise SystemExit(f"{target}: HTTP {status}")
        rows.append({"page": name, "path": target, "bytes": size, "cold_s": cold,
                     "warm_median_s": median(warm), "warm_max_s": max(warm)})
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'page':40} {'KB':>6} {'cold s':>7} {'warm med':>9} {'warm max':>9}")
    for r in rows:
        print(f"{r['page']:40} {r['bytes'] / 1024:6.0f} {r['cold_s']:7.3f} "
              f"{r['warm_median_s']:9.3f} {r['warm_max_s']:9.3f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_db = Path(tempfile.gettempdir()) / "costwarden-dashboard-10m.db"
    parser.add_argument("--db", type=Path, default=default_db)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    end = None if args.rebuild else ledger_end(args.db, args.records)
    build_s = None
    if end is None:
        print(f"building a {args.records:,}-record ledger at {args.db} ...", flush=True)
        started = time.perf_counter()
        end = await build_ledger(args.db, args.records, args.days, args.seed)
        build_s = time.perf_counter() - started
        print(f"built in {build_s:.0f} s", flush=True)
    rows = await measure(args.db, end, args.runs)
    print_table(rows)
    slowest = max(max(r["cold_s"], r["warm_max_s"]) for r in rows)
    print(f"slowest render: {slowest:.3f} s (target < 1 s)")
    write_results("dashboard", {
        "records": args.records, "days": args.days, "seed": args.seed, "runs": args.runs,
        "db_bytes": args.db.stat().st_size, "build_s": build_s, "ledger_end": end.isoformat(),
        "budgets": BUDGETS, "results": rows,
    })


if __name__ == "__main__":
    asyncio.run(main())
