"""The pages on a seeded ledger (SQLite and PostgreSQL): numbers against values computed from the
seed, hostile values escaped, sorting, top-N, drill-down and the request record."""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from costwarden.dashboard.routes import Dashboard
from costwarden.ledger import Store
from costwarden.records import UsageRecord
from tests.dashboard.dom import by_id, cells, parse, rows, walk
from tests.dashboard.seed import (
    HOSTILE_FEATURE,
    HOSTILE_TEAM,
    HOSTILE_USER,
    NOW,
    SEED_RECORDS,
    USERS,
    build_dashboard,
    call,
)

Pick = Callable[[UsageRecord], bool]


def window(days: int) -> tuple[datetime, datetime]:
    """The documented window: up to the end of the current hour, ``days`` back from there."""
    until = NOW.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return until - timedelta(days=days), until


def seeded(days: int, pick: Pick = lambda r: True) -> list[UsageRecord]:
    since, until = window(days)
    return [r for r in SEED_RECORDS if since <= r.created_at < until and pick(r)]


def cost_of(records: list[UsageRecord]) -> Decimal:
    return sum((r.cost for r in records if r.cost is not None), Decimal(0))


def user_of(record: UsageRecord) -> str | None:
    return record.principal.user if record.principal else None


async def test_overview_totals_match_the_seed(dashboard: Dashboard) -> None:
    page = await call(dashboard, "/dashboard?range=7d")
    assert page.status == 200
    dom = parse(page.text)
    records = seeded(7)
    assert Decimal(by_id(dom, "total-cost").attrs["data-usd"]) == cost_of(records)
    assert by_id(dom, "total-cost").text == f"${cost_of(records):,.2f}"
    assert int(by_id(dom, "total-requests").attrs["data-count"]) == len(records)
    unknown = sum(1 for r in records if r.cost is None)
    assert int(by_id(dom, "total-unknown").attrs["data-count"]) == unknown
    saved = sum((s.cost_saved or Decimal(0) for r in records for s in r.savings), Decimal(0))
    assert Decimal(by_id(dom, "total-saved").attrs["data-usd"]) == saved
    assert by_id(dom, "spend-chart").tag == "svg"


async def test_the_chart_has_one_bar_per_hour_summing_that_hours_spend(
    dashboard: Dashboard,
) -> None:
    page = await call(dashboard, "/dashboard?range=24h")
    bars = [e for e in walk(parse(page.text)) if e.tag == "g" and e.attrs.get("class") == "bar"]
    since, until = window(1)
    assert len(bars) == 24
    for bar in bars:
        start = datetime.fromisoformat(bar.attrs["data-start"])
        hour = [r for r in SEED_RECORDS if start <= r.created_at < start + timedelta(hours=1)]
        assert Decimal(bar.attrs["data-usd"]) == cost_of(hour)
    assert datetime.fromisoformat(bars[0].attrs["data-start"]) == since
    daily = await call(dashboard, "/dashboard?range=30d&grain=day&stack=team")
    day_bars = [e for e in walk(parse(daily.text)) if e.tag == "g" and "data-start" in e.attrs]
    assert len(day_bars) == 30
    assert sum(Decimal(b.attrs["data-usd"]) for b in day_bars) == cost_of(
        [r for r in SEED_RECORDS if r.created_at >= until - timedelta(days=30)]
    )


async def test_hostile_values_from_the_ledger_are_escaped(dashboard: Dashboard) -> None:
    pages = [
        "/dashboard?range=7d&stack=team",
        "/dashboard/breakdown/user?range=7d",
        "/dashboard/breakdown/team?range=7d",
        "/dashboard/breakdown/feature?range=7d",
        "/dashboard/events?range=7d",
        "/dashboard/scope?dim=user&value=" + html.escape(HOSTILE_USER),
    ]
    for target in pages:
        text = (await call(dashboard, target)).text
        for hostile in (HOSTILE_USER, HOSTILE_TEAM, HOSTILE_FEATURE, "<b>"):
            assert hostile not in text, (target, hostile)
        assert "<script" not in text and "onerror=" not in text.replace("onerror=alert", "")
    users = (await call(dashboard, "/dashboard/breakdown/user?range=7d")).text
    assert html.escape(HOSTILE_USER) in users
    values = [r.attrs["data-value"] for r in rows(parse(users), "breakdown")]
    assert HOSTILE_USER in values  # the parser unescapes: the exact name round-trips


async def test_breakdown_sorts_by_any_column_and_shows_the_top_n(seeded_store: Store) -> None:
    dashboard = build_dashboard(seeded_store, dashboard={"top_n": 2})
    records = seeded(30)
    spend = {u: cost_of([r for r in records if user_of(r) == u]) for u in USERS}
    by_cost = sorted(USERS, key=lambda u: spend[u], reverse=True)

    page = parse((await call(dashboard, "/dashboard/breakdown/user?range=30d")).text)
    assert [r.attrs["data-value"] for r in rows(page, "breakdown")] == by_cost[:2]
    assert by_id(page, "row-count").attrs["data-total"] == "4"
    assert by_id(page, "show-all").attrs["href"].endswith("top=all")

    every = parse((await call(dashboard, "/dashboard/breakdown/user?range=30d&top=all&dir=asc"
                              )).text)
    listed = rows(every, "breakdown")
    assert [r.attrs["data-value"] for r in listed] == by_cost[::-1]
    for row in listed:
        assert Decimal(cells(row)[4].attrs["data-usd"]) == spend[row.attrs["data-value"]]

    by_name = parse((await call(dashboard, "/dashboard/breakdown/user?range=30d&top=all"
                                "&sort=value&dir=asc")).text)
    assert [r.attrs["data-value"] for r in rows(by_name, "breakdown")] == sorted(USERS)
    counts = parse((await call(dashboard, "/dashboard/breakdown/user?range=30d&top=all"
                               "&sort=requests")).text)
    shown = [int(cells(r)[1].attrs["data-count"]) for r in rows(counts, "breakdown")]
    assert shown == sorted(shown, reverse=True)


async def test_each_breakdown_row_links_to_its_drill_down(dashboard: Dashboard) -> None:
    page = parse((await call(dashboard, "/dashboard/breakdown/team?range=7d")).text)
    links = {r.attrs["data-value"]: cells(r)[0].children[0].attrs["href"]
             for r in rows(page, "breakdown")}
    assert links["ml"] == "/dashboard/scope?dim=team&value=ml&range=7d"
    assert links[HOSTILE_TEAM].startswith("/dashboard/scope?dim=team&value=%3Cb%3E")


async def test_drill_down_shows_the_scopes_spend_and_pages_its_requests(
    seeded_store: Store,
) -> None:
    dashboard = build_dashboard(seeded_store, dashboard={"recent_requests": 5})
    alice = sorted(seeded(7, lambda r: user_of(r) == "alice"), key=lambda r: r.created_at,
                   reverse=True)
    page = parse((await call(dashboard, "/dashboard/scope?dim=user&value=alice&range=7d")).text)
    assert Decimal(by_id(page, "total-cost").attrs["data-usd"]) == cost_of(alice)
    first = rows(page, "requests")
    assert [r.attrs["data-request"] for r in first] == [r.request_id for r in alice[:5]]
    for row, record in zip(first, alice, strict=False):
        assert cells(row)[-1].attrs["data-usd"] == ("" if record.cost is None
                                                    else f"{record.cost:f}")
    older = by_id(page, "older").attrs["href"]
    second = parse((await call(dashboard, older)).text)
    assert [r.attrs["data-request"] for r in rows(second, "requests")] == [
        r.request_id for r in alice[5:10]
    ]


async def test_a_request_links_to_its_full_record(dashboard: Dashboard) -> None:
    hostile = seeded(7, lambda r: user_of(r) == HOSTILE_USER)[0]
    page = await call(dashboard, f"/dashboard/request/{hostile.request_id}")
    assert page.status == 200
    record = by_id(parse(page.text), "record")
    assert record.attrs["data-request"] == hostile.request_id
    assert HOSTILE_FEATURE in record.text and HOSTILE_FEATURE not in page.text
    assert hostile.requested_model in record.text


async def test_unknown_pages_dimensions_and_records_are_404(dashboard: Dashboard) -> None:
    for target in ("/dashboard/breakdown/password", "/dashboard/request/cw-nope",
                   "/dashboard/scope?dim=secret&value=x", "/dashboard/scope?dim=user",
                   "/dashboard/nothing"):
        assert (await call(dashboard, target)).status == 404, target


async def test_events_list_the_stored_alerts_newest_first(dashboard: Dashboard) -> None:
    page = parse((await call(dashboard, "/dashboard/events?range=7d")).text)
    assert [r.attrs["data-kind"] for r in rows(page, "events")] == [
        "anomaly.spend", "price.change"
    ]
    only = parse((await call(dashboard, "/dashboard/events?range=7d&kind=price")).text)
    assert [r.attrs["data-kind"] for r in rows(only, "events")] == ["price.change"]
    recent = parse((await call(dashboard, "/dashboard?range=24h")).text)
    assert [r.attrs["data-kind"] for r in rows(recent, "recent-events")] == ["anomaly.spend"]
