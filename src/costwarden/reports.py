"""Spend reports over the ledger: query, time ranges, and table / CSV / JSON renderings.

Money stays ``Decimal``: CSV and JSON carry the exact stored sum as a string; the table rounds
for display only, keeping at least six significant digits so sub-cent costs stay visible.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal, NamedTuple

import orjson
from rich.table import Table

from costwarden.ledger.store import SpendRow, Store, check_dimensions

_DURATION = re.compile(r"(\d+)\s*([mhdw])")
_UNIT = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_METRICS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost",
    "unknown_cost_requests",
)


class TimeRange(NamedTuple):
    """``since`` inclusive, ``until`` exclusive, both UTC-aware."""

    since: datetime
    until: datetime


def parse_range(since: str, until: str | None = None, *, now: datetime | None = None) -> TimeRange:
    """Parse a report range: each side is a duration back from now (``30m``, ``24h``, ``7d``,
    ``2w``) or an ISO date / datetime (``2026-01-31``, ``2026-01-31T12:00:00Z``; no zone means
    UTC). ``until`` defaults to now. Raises ValueError with a usage hint on bad input.
    """
    now = now or datetime.now(UTC)
    start = _parse_moment(since, now)
    end = _parse_moment(until, now) if until else now
    if start >= end:
        raise ValueError(f"the range is empty: {start.isoformat()} is not before {end.isoformat()}")
    return TimeRange(start, end)


def _parse_moment(text: str, now: datetime) -> datetime:
    text = text.strip()
    duration = _DURATION.fullmatch(text)
    if duration:
        try:
            return now - timedelta(**{_UNIT[duration.group(2)]: int(duration.group(1))})
        except OverflowError:  # e.g. 99999999999d: before year 1, or past a C int
            raise ValueError(f"{text!r} reaches back further than the calendar goes") from None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"cannot read {text!r} as a time: use a duration back from now (30m, 24h, 7d, 2w) "
            "or an ISO date or datetime (2026-01-31, 2026-01-31T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)  # as the stores compare; and it must exist there
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        raise ValueError(f"{text!r} falls outside the years 1 to 9999 in UTC") from None


async def spend_report(
    store: Store,
    group_by: Sequence[str],
    since: datetime | None = None,
    until: datetime | None = None,
    filters: Mapping[str, str] | None = None,
    *,
    order: Literal["cost", "group"] = "cost",
) -> list[SpendRow]:
    """Spend per group in [since, until). ``order="cost"``: most expensive first;
    ``"group"``: by group values (natural for ``day``)."""
    check_dimensions(group_by)
    rows = await store.spend(group_by, since, until, filters or {})
    if order == "cost":
        rows.sort(key=lambda r: (r.cost, r.unknown_cost_requests, r.requests), reverse=True)
    return rows


def format_money(amount: Decimal, significant: int = 6) -> str:
    """``$`` amount rounded for display to ``significant`` digits, never below cents."""
    if amount == 0:
        return "$0.00"
    decimals = max(2, significant - 1 - amount.adjusted())
    shown = amount.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)
    text = f"{shown:,f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}${whole.lstrip('-')}.{fraction}"


def _group_names(rows: Sequence[SpendRow], group_by: Sequence[str] | None) -> list[str]:
    if group_by is not None:
        return list(group_by)
    return list(rows[0].group) if rows else []


def render_table(
    rows: Sequence[SpendRow], group_by: Sequence[str] | None = None, *, title: str | None = None
) -> Table:
    """A rich Table, with a total line when there is more than one group."""
    names = _group_names(rows, group_by)
    table = Table(title=title, show_footer=len(rows) > 1)
    total = _total(rows)
    for index, name in enumerate(names):
        table.add_column(name, footer="total" if index == 0 else "")
    numeric: list[tuple[str, str]] = [
        ("requests", f"{total.requests:,}"),
        ("input tokens", f"{total.input_tokens:,}"),
        ("output tokens", f"{total.output_tokens:,}"),
        ("cached tokens", f"{total.cached_tokens:,}"),
        ("cost", format_money(total.cost)),
        ("unpriced", f"{total.unknown_cost_requests:,}"),
    ]
    for header, footer in numeric:
        table.add_column(header, justify="right", footer=footer)
    for row in rows:
        table.add_row(
            *[row.group.get(name) or "-" for name in names],
            f"{row.requests:,}",
            f"{row.input_tokens:,}",
            f"{row.output_tokens:,}",
            f"{row.cached_tokens:,}",
            format_money(row.cost),
            f"{row.unknown_cost_requests:,}",
        )
    return table


def _total(rows: Sequence[SpendRow]) -> SpendRow:
    return SpendRow(
        group={},
        requests=sum(r.requests for r in rows),
        input_tokens=sum(r.input_tokens for r in rows),
        output_tokens=sum(r.output_tokens for r in rows),
        cached_tokens=sum(r.cached_tokens for r in rows),
        cost=sum((r.cost for r in rows), Decimal(0)),
        unknown_cost_requests=sum(r.unknown_cost_requests for r in rows),
    )


def render_csv(rows: Sequence[SpendRow], group_by: Sequence[str] | None = None) -> str:
    """CSV with one column per group dimension, then the metrics; cost is the exact sum."""
    names = _group_names(rows, group_by)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*names, *_METRICS])
    for row in rows:
        data = row.to_dict()
        writer.writerow([*(row.group.get(n) or "" for n in names), *(data[m] for m in _METRICS)])
    return out.getvalue()


def render_json(rows: Sequence[SpendRow]) -> str:
    """JSON list of ``SpendRow.to_dict()``: group values, metrics, cost as exact text."""
    return orjson.dumps([row.to_dict() for row in rows], option=orjson.OPT_INDENT_2).decode()
