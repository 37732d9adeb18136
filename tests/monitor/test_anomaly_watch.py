"""The live anomaly watch on a real ledger (SQLite and PostgreSQL): seasonal traffic, a runaway
user, one alert naming the coarser scopes it lifted, no repeat, none after a restart."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from costwarden.ledger import Store
from costwarden.ledger.rows import row_from_record
from costwarden.monitor.alert_log import stored
from costwarden.monitor.anomaly_watch import AnomalyWatch
from costwarden.monitor.config import AnomalyWatchConfig
from tests.ledger.factory import make_record

START = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 21
HOUR_NOW = START + timedelta(days=DAYS, hours=14)  # a weekday afternoon
CONFIG = AnomalyWatchConfig()  # the defaults: $5/h floor, +50 % jump, score 4


def hourly_cost(user: str, hour: datetime, rng: random.Random) -> Decimal:
    """alice: $2/h by day, $0.5/h at night; mallory: $1/h by day; ±5 % noise."""
    day = 8 <= hour.hour < 20
    base = {"alice": 2.0 if day else 0.5, "mallory": 1.0 if day else 0.2}[user]
    return Decimal(str(round(base * rng.uniform(0.95, 1.05), 6)))


async def seed_history(store: Store) -> None:
    rng = random.Random(7)
    rows = []
    for h in range(DAYS * 24 + 14):
        hour = START + timedelta(hours=h)
        for user in ("alice", "mallory"):
            cost = hourly_cost(user, hour, rng)
            for part in range(2):  # two requests an hour, half the cost each
                at = hour + timedelta(minutes=10 + 20 * part)
                rows.append(make_record(len(rows) % 50, created_at=at, user=user, team="ml",
                                        cost=cost / 2))
    await store.insert_rows([row_from_record(r) for r in rows])


async def add_current(store: Store, user: str, dollars: Decimal, minutes: int, n: int) -> None:
    rows = [
        make_record(i % 50, created_at=HOUR_NOW + timedelta(minutes=minutes * i / n),
                    user=user, team="ml", cost=dollars / n)
        for i in range(n)
    ]
    await store.insert_rows([row_from_record(r) for r in rows])


async def test_a_runaway_user_raises_one_alert_that_names_its_team_and_the_total(
    ledger_store: Store,
) -> None:
    await seed_history(ledger_store)
    await add_current(ledger_store, "alice", Decimal("1.0"), 29, 2)  # normal
    await add_current(ledger_store, "mallory", Decimal("5.0"), 29, 10)  # 10x its hour in half
    watch = AnomalyWatch(ledger_store, CONFIG, alerts=None)
    [alert] = await watch.check(HOUR_NOW + timedelta(minutes=30))
    assert alert.kind == "anomaly.spend_usd" and alert.scope == "user:mallory"
    assert alert.severity == "critical"  # ~10x the expected hour
    assert alert.fields["projected"] == "$10.00"
    also = alert.fields["also elevated"].split(", ")
    assert "team:ml" in also and "global" in also
    assert alert.dedup_key == f"anomaly:user:mallory:{HOUR_NOW.isoformat()}"

    await add_current(ledger_store, "mallory", Decimal("1.0"), 33, 2)
    assert await watch.check(HOUR_NOW + timedelta(minutes=35)) == []  # the same runaway

    await ledger_store.record_alerts([stored(alert)])
    restarted = AnomalyWatch(ledger_store, CONFIG, alerts=None)
    assert await restarted.check(HOUR_NOW + timedelta(minutes=40)) == []


async def test_normal_traffic_raises_nothing_all_hour(ledger_store: Store) -> None:
    await seed_history(ledger_store)
    watch = AnomalyWatch(ledger_store, CONFIG, alerts=None)
    for minute in range(5, 60, 5):
        await add_current(ledger_store, "alice", Decimal("0.17"), 1, 1)
        await add_current(ledger_store, "mallory", Decimal("0.08"), 1, 1)
        now = HOUR_NOW + timedelta(minutes=minute)
        assert await watch.check(now) == [], minute


async def test_a_spike_under_the_dollar_floor_pages_nobody(ledger_store: Store) -> None:
    await seed_history(ledger_store)
    await add_current(ledger_store, "mallory", Decimal("1.5"), 29, 5)  # 3x, but only +$2/h
    watch = AnomalyWatch(ledger_store, CONFIG, alerts=None)
    assert await watch.check(HOUR_NOW + timedelta(minutes=30)) == []
