"""The version watch on a seeded ledger (SQLite and PostgreSQL): a pinned model answered as
another version is one ``version.changed`` alert with its weekly impact at the reported
version's catalog price (computed here by hand), once; an unknown version says the impact is
unknown; end to end through a real local webhook receiver."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import aiohttp

from costwarden.ledger import Store
from costwarden.ledger.watch import VersionSighting
from costwarden.monitor.alerts import AlertRouter
from costwarden.monitor.price_watch_job import PriceWatchJob
from costwarden.monitor.version_watch import pinned_mismatches
from costwarden.pricing.resolved import ResolvedPrice
from costwarden.records import UsageRecord
from costwarden.reports import format_money
from tests.monitor.test_alerts_webhook import Receiver, receiver, session, sink_for  # noqa: F401
from tests.monitor.watch_support import (
    NOW,
    billed,
    custom,
    delta,
    model,
    price_of,
    settings,
    store_records,
    watch,
)

PINNED = "gpt-4o-2024-08-06"
PINS = {"gpt-4o": PINNED}


def _pinned_ledger() -> list[UsageRecord]:
    """Six requests for the alias this week, rewritten to the pin; two answered as the older,
    dearer gpt-4o-2024-05-13, one with a provider prefix (the same version); unpinned
    gpt-4o-mini answered as its dated version (not a pin mismatch)."""
    config = settings(model(PINNED), pins=PINS)
    price = price_of(config, PINNED, NOW)
    reported = [
        PINNED,
        PINNED,
        PINNED,
        f"openai/{PINNED}",
        "gpt-4o-2024-05-13",
        "gpt-4o-2024-05-13",
    ]
    records = [
        _answered(i, name, NOW - timedelta(minutes=50 - i), price)
        for i, name in enumerate(reported)
    ]
    mini = billed(8, "gpt-4o-mini", NOW - timedelta(minutes=5), price)
    mini.reported_model = "gpt-4o-mini-2024-07-18"
    return [*records, mini]


def _answered(index: int, reported: str, at: datetime, price: ResolvedPrice) -> UsageRecord:
    """A request for the alias, rewritten to the pin, that upstream answered as ``reported``."""
    return billed(index, PINNED, at, price, requested_model="gpt-4o", reported_model=reported)


async def test_a_pinned_model_answered_as_another_version_alerts_once_with_impact(
    ledger_store: Store,
) -> None:
    records = _pinned_ledger()
    await store_records(ledger_store, records)
    job, sink = watch(settings(model(PINNED), pins=PINS), ledger_store)

    await job.run(NOW)

    (alert,) = sink.alerts
    assert (alert.kind, alert.scope, alert.severity) == ("version.changed", PINNED, "warning")
    assert alert.dedup_key == f"version.changed:{PINNED}:gpt-4o-2024-05-13"
    assert alert.fields["requests seen"] == "2"
    # All six requests of the pinned model this week, at gpt-4o-2024-05-13 ($5 in, no cache
    # price so cache reads at $5, $15 out) minus the pin ($2.5 in, $1.25 cache read, $10 out).
    week = [r for r in records if r.resolved_model == PINNED]
    expected = delta(week, "2.5", "3.75", "5")
    assert expected == Decimal("0.0022125")
    assert alert.fields["impact per week"] == format_money(expected) == "$0.0022125"
    assert alert.fields["reported rates /MTok"] == "in $5 / out $15 / cache read = input"
    assert alert.fields["pinned rates /MTok"] == "in $2.5 / out $10 / cache read $1.25"
    assert "2 request(s) for gpt-4o-2024-08-06 as gpt-4o-2024-05-13" in alert.text
    assert "costs $0.0022125 more per week" in alert.text

    price = price_of(settings(model(PINNED)), PINNED, NOW)
    later = _answered(20, "gpt-4o-2024-05-13", NOW + timedelta(minutes=10), price)
    await store_records(ledger_store, [later])
    await job.run(NOW + timedelta(hours=1))
    restarted, again = watch(settings(model(PINNED), pins=PINS), ledger_store)
    await restarted.run(NOW + timedelta(hours=2))
    assert len(sink.alerts) == 1 and again.alerts == []


async def test_an_unknown_reported_version_says_the_impact_is_unknown(ledger_store: Store) -> None:
    config = settings(
        model("house-2026-01", custom({"input_per_mtok": "2", "output_per_mtok": "8"})),
        pins={"house": "house-2026-01"},
    )
    price = price_of(config, "house-2026-01", NOW)
    record = billed(
        0,
        "house-2026-01",
        NOW - timedelta(minutes=1),
        price,
        requested_model="house",
        reported_model="house-2026-02",
    )
    await store_records(ledger_store, [record])
    job, sink = watch(config, ledger_store)

    await job.run(NOW)

    (alert,) = sink.alerts
    assert (alert.kind, alert.severity) == ("version.changed", "warning")
    assert alert.fields["impact per week"] == "unknown"
    assert alert.fields["reported rates /MTok"] == "unknown"
    assert "no price is known for house-2026-02" in alert.text


async def test_a_version_change_reaches_a_webhook(
    ledger_store: Store,
    receiver: Receiver,  # noqa: F811
    session: aiohttp.ClientSession,  # noqa: F811
) -> None:
    await store_records(ledger_store, _pinned_ledger())
    sink = sink_for(receiver, session)
    router = AlertRouter([sink], cooldown_s=3600)
    router.start()
    job = PriceWatchJob(settings(model(PINNED), pins=PINS), ledger_store, router)

    await job.run(NOW)
    await job.run(NOW + timedelta(hours=1))
    await router.close()  # drains the webhook queue

    (body,) = receiver.bodies
    assert body["blocks"][0]["text"]["text"] == f"{PINNED} answered as gpt-4o-2024-05-13"
    assert {"type": "mrkdwn", "text": "*impact per week*\n$0.0022125"} in body["blocks"][2][
        "fields"
    ]
    assert body["text"].startswith(f"[warning] {PINNED} answered as gpt-4o-2024-05-13")


def test_only_pinned_models_answered_as_another_version_count_once_each() -> None:
    def seen(model: str, upstream: str, reported: str, requests: int, hour: int) -> VersionSighting:
        return VersionSighting(model, upstream, reported, requests, NOW.replace(hour=hour))

    pins = {"gpt-4o": PINNED, "claude": "claude-x-1"}
    sightings = [
        seen(PINNED, PINNED, f"azure/{PINNED}", 5, 1),  # the pin, prefixed: no mismatch
        seen(PINNED, PINNED, "gpt-4o-2024-11-20", 2, 3),
        seen(PINNED, "gpt-4o-eu", "gpt-4o-2024-11-20", 1, 2),  # another endpoint: merged
        seen("gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 9, 1),  # not pinned
        seen("claude", "claude", "claude-x-2", 4, 1),  # alias routed as itself (pins "off")
        seen("claude", "claude", "claude-x-3", 4, 1),  # already alerted on
    ]
    found = pinned_mismatches(pins, sightings, frozenset({("claude", "claude-x-3")}))
    assert [(s.model, s.reported_model, s.requests, s.first_seen.hour) for s in found] == [
        ("claude", "claude-x-2", 4, 1),
        (PINNED, "gpt-4o-2024-11-20", 3, 2),
    ]
