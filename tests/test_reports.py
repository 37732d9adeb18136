"""Spend reports: time ranges, ordering, and exact money in every rendering."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from rich.console import Console

from costwarden.ledger import SpendRow, Store, row_from_record
from costwarden.reports import (
    format_money,
    parse_range,
    render_csv,
    render_json,
    render_table,
    spend_report,
)
from tests.ledger.factory import make_record

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def row(user: str | None, cost: str, requests: int = 1, unknown: int = 0) -> SpendRow:
    return SpendRow({"user": user}, requests, 100, 20, 10, Decimal(cost), unknown)


def test_durations_count_back_from_now() -> None:
    assert parse_range("7d", now=NOW) == (NOW - timedelta(days=7), NOW)
    assert parse_range("24h", now=NOW).since == NOW - timedelta(hours=24)
    assert parse_range("30m", now=NOW).since == NOW - timedelta(minutes=30)
    assert parse_range("2w", "1w", now=NOW) == (NOW - timedelta(weeks=2), NOW - timedelta(weeks=1))


def test_iso_dates_and_times_are_utc_unless_zoned() -> None:
    since, until = parse_range("2026-03-01", "2026-03-02T06:30:00Z", now=NOW)
    assert since == datetime(2026, 3, 1, tzinfo=UTC)
    assert until == datetime(2026, 3, 2, 6, 30, tzinfo=UTC)
    naive = parse_range("2026-03-01T08:00:00", now=NOW).since
    assert naive == datetime(2026, 3, 1, 8, tzinfo=UTC)
    zoned = parse_range("2026-03-01T08:00:00+02:00", now=NOW).since
    assert zoned == datetime(2026, 3, 1, 6, tzinfo=UTC)


def test_bad_ranges_are_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match="7d"):
        parse_range("last tuesday", now=NOW)
    with pytest.raises(ValueError, match="empty"):
        parse_range("2026-03-02", "2026-03-01", now=NOW)


@pytest.mark.parametrize(
    "text", ["99999999999d", "999999d", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
)
def test_moments_beyond_the_calendar_are_refused_not_crashed_on(text: str) -> None:
    with pytest.raises(ValueError, match=r"calendar|years 1 to 9999"):
        parse_range(text, now=NOW)


def test_money_keeps_sub_cent_digits() -> None:
    assert format_money(Decimal("0.000123")) == "$0.000123"
    assert format_money(Decimal("0.0000001234567")) == "$0.000000123457"
    assert format_money(Decimal("12.3456789")) == "$12.3457"
    assert format_money(Decimal("1234.5678")) == "$1,234.57"
    assert format_money(Decimal("0.5")) == "$0.50"
    assert format_money(Decimal(0)) == "$0.00"
    assert format_money(Decimal("-0.25")) == "-$0.25"


async def test_report_orders_by_cost_or_by_group(ledger_store: Store) -> None:
    costs = {"alice": "0.002", "bob": "0.5", "carol": "0.000001"}
    records = [make_record(i, user=u, cost=Decimal(c)) for i, (u, c) in enumerate(costs.items())]
    await ledger_store.insert_rows([row_from_record(r) for r in records])
    by_cost = await spend_report(ledger_store, ["user"], NOW - timedelta(days=30), NOW)
    assert [r.group["user"] for r in by_cost] == ["bob", "alice", "carol"]
    by_group = await spend_report(ledger_store, ["user"], order="group")
    assert [r.group["user"] for r in by_group] == ["alice", "bob", "carol"]
    assert sum((r.cost for r in by_group), Decimal(0)) == sum(map(Decimal, costs.values()))
    assert await spend_report(ledger_store, ["user"], NOW, NOW + timedelta(days=1)) == []


def test_table_shows_sub_cent_costs_and_a_total() -> None:
    rows = [row("alice", "0.000123"), row(None, "0.0001", requests=2, unknown=1)]
    buffer = io.StringIO()
    Console(file=buffer, width=160, color_system=None).print(render_table(rows, title="Spend"))
    text = buffer.getvalue()
    assert "$0.000123" in text and "$0.000223" in text and "total" in text
    assert "alice" in text and "-" in text


def test_csv_carries_exact_costs() -> None:
    rows = [row("alice", "0.000000123456789012345"), row(None, "2")]
    parsed = list(csv.DictReader(io.StringIO(render_csv(rows))))
    assert [r["user"] for r in parsed] == ["alice", ""]
    assert Decimal(parsed[0]["cost"]) == rows[0].cost
    assert parsed[0]["requests"] == "1" and parsed[1]["unknown_cost_requests"] == "0"
    header_only = render_csv([], group_by=["team", "day"])
    assert header_only.splitlines() == [
        "team,day,requests,input_tokens,output_tokens,cached_tokens,cost,unknown_cost_requests"
    ]


def test_json_carries_costs_as_exact_strings() -> None:
    rows = [row("alice", "0.000000123456789012345")]
    (parsed,) = orjson.loads(render_json(rows))
    assert parsed["user"] == "alice"
    assert parsed["cost"] == "0.000000123456789012345"
    assert parsed["cached_tokens"] == 10
