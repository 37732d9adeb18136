"""A small ledger with known numbers for the dashboard tests, and a way to call the dashboard.

Four users over three weeks (two requests each per day, at 09:xx and 14:xx UTC), one of them
with a hostile name and team, a few savings and one request without a known cost. Expected
values in the tests are computed from ``SEED_RECORDS`` (or by SQL on the ledger), never through
the dashboard's own code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from costwarden.config import settings_from_dict
from costwarden.dashboard.routes import Dashboard
from costwarden.ledger import Store, row_from_record
from costwarden.ledger.store import StoredAlert
from costwarden.policy.engine import PolicyEngine
from costwarden.records import Saving, Tags, UsageRecord
from costwarden.state.memory import MemoryStateBackend
from tests.ledger.factory import make_record

ADMIN_KEY = "dashboard-admin-key-for-tests"
NOW = datetime(2026, 3, 20, 15, 30, tzinfo=UTC)
FIRST_DAY = datetime(2026, 2, 24, tzinfo=UTC)
HOSTILE_USER = '<script>alert("pwned")</script>'
HOSTILE_TEAM = "<b>red</b>&amp;"
HOSTILE_FEATURE = '"><img src=x onerror=alert(1)>'
# user → (team, model, feature, env, cost per request)
USERS: dict[str, tuple[str, str, str, str, Decimal]] = {
    "alice": ("ml", "gpt-4o", "search", "prod", Decimal("0.50")),
    "bob": ("web", "gpt-4o-mini", "chat", "prod", Decimal("0.20")),
    "carol": ("ml", "gpt-4o", "summarise", "staging", Decimal("1.25")),
    HOSTILE_USER: (HOSTILE_TEAM, "gpt-4o-mini", HOSTILE_FEATURE, "dev", Decimal("0.01")),
}
SAVED = Decimal("0.10")  # every fifth request was partly served by the exact cache
BUDGETS: list[dict[str, Any]] = [
    {"name": "company", "limit_usd": "100"},
    {"name": "per-team", "scope": {"team": "*"}, "limit_usd": "30"},
    {"name": "daily-ml", "scope": {"team": "ml"}, "period": "day", "limit_usd": "5"},
]


def seed_records(now: datetime = NOW) -> tuple[UsageRecord, ...]:
    """The seed's requests, from 24 days before ``now``'s day up to ``now``."""
    records = []
    index = 0
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    moment = midnight - (NOW.date() - FIRST_DAY.date())
    while moment < now:
        for offset, (user, (team, model, feature, env, cost)) in enumerate(USERS.items()):
            for hour in (9, 14):
                created = moment + timedelta(hours=hour, minutes=5 * offset + 1)
                if created >= now:
                    continue
                index += 1
                savings = [Saving("cache_exact", SAVED, 40)] if index % 5 == 0 else []
                records.append(make_record(
                    index, cost=None if index == 7 else cost, user=user, team=team,
                    model=model, created_at=created,
                    tags=Tags(feature=feature, session=None, env=env, agent=None),
                    savings=savings,
                ))
        moment += timedelta(days=1)
    return tuple(records)


SEED_RECORDS = seed_records()
ALERTS = (
    StoredAlert(at=NOW - timedelta(hours=2), kind="anomaly.spend", severity="warning",
                title="Spend anomaly: team ml", text="ml spent 3x its usual hour",
                scope="team=ml", dedup_key="anomaly:ml", fields={"team": "ml"}),
    StoredAlert(at=NOW - timedelta(days=2), kind="price.change", severity="warning",
                title="Price change: gpt-4o <b>", text="gpt-4o got dearer",
                scope="model=gpt-4o", dedup_key="price:gpt-4o", fields={"model": "gpt-4o"}),
)


async def seed(store: Store, records: Sequence[UsageRecord] = SEED_RECORDS) -> None:
    await store.insert_rows([row_from_record(r) for r in records])
    while await store.refresh_rollups(max_hours=1000):
        pass
    await store.record_alerts(ALERTS)


def build_dashboard(
    store: Store,
    *,
    admin_key: str | None = ADMIN_KEY,
    clock: Callable[[], datetime] = lambda: NOW,
    budgets: Sequence[dict[str, Any]] = BUDGETS,
    dashboard: dict[str, Any] | None = None,
) -> Dashboard:
    settings = settings_from_dict(
        {"policy": {"budgets": list(budgets)}, "dashboard": dashboard or {}}
    )
    policy = PolicyEngine(settings.policy, MemoryStateBackend(), clock=lambda: clock().timestamp())
    return Dashboard(settings.dashboard, store, policy, admin_key, clock)


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    text: str

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)


async def call(
    dashboard: Dashboard,
    target: str,
    *,
    method: str = "GET",
    bearer: str | None = ADMIN_KEY,
    cookie: str | None = None,
    form: bytes = b"",
    scheme: str = "http",
) -> Response:
    """One request through the dashboard's ASGI handler."""
    path, _, query = target.partition("?")
    headers = []
    if bearer is not None:
        headers.append((b"authorization", f"Bearer {bearer}".encode()))
    if cookie is not None:
        headers.append((b"cookie", cookie.encode()))
    if form:
        headers.append((b"content-type", b"application/x-www-form-urlencoded"))
    scope = {"type": "http", "method": method, "path": path, "query_string": query.encode(),
             "headers": headers, "scheme": scheme}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": form, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    await dashboard.handle(scope, receive, send)
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    pairs = [(k.decode(), v.decode()) for k, v in start["headers"]]
    return Response(int(start["status"]), pairs, body.decode())
