"""The query string of a dashboard page, read into typed values once.

Unknown or malformed values fall back to the defaults instead of failing: a dashboard link
edited by hand should still show a page. Only the drill-down's dimension is checked strictly
(the route answers 404 for one that does not exist).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import parse_qsl

from costwarden.gateway.asgi import Scope

Grain = Literal["hour", "day"]
RANGES: Mapping[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_GRAIN: Mapping[str, Grain] = {"24h": "hour", "7d": "hour", "30d": "day"}
# 30 days by hour is 720 bars, too thin to read, and the slowest read of the rollups (1.6 s on
# the 10-million-record benchmark ledger): hourly bars go up to a week.
HOURLY_RANGES = frozenset({"24h", "7d"})
STEP: Mapping[Grain, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
# Breakdown tables and drill-downs exist for these (the cube's dimensions but time).
DIMENSIONS = ("user", "team", "feature", "env", "model", "key", "provider")
STACKS = ("model", "team")


def query_params(scope: Scope) -> dict[str, str]:
    """The query string as a dict (last value wins), decoded as UTF-8."""
    raw = scope.get("query_string", b"").decode("utf-8", errors="replace")
    return dict(parse_qsl(raw, keep_blank_values=False))


def floor_to(moment: datetime, grain: Grain) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if grain == "day" else moment


@dataclass(frozen=True, slots=True)
class Window:
    """[since, until) aligned to ``grain``; ``until`` is the end of the current bucket, so the
    partial current hour or day is on the chart."""

    range_name: str
    grain: Grain
    since: datetime
    until: datetime

    def starts(self) -> list[datetime]:
        step = STEP[self.grain]
        count = (self.until - self.since) // step
        return [self.since + step * i for i in range(count)]


def window(params: Mapping[str, str], now: datetime) -> Window:
    name = params.get("range", "7d")
    if name not in RANGES:
        name = "7d"
    grain_text = params.get("grain", DEFAULT_GRAIN[name])
    grain: Grain = "hour" if grain_text == "hour" and name in HOURLY_RANGES else "day"
    until = floor_to(now, grain) + STEP[grain]
    since = floor_to(until - RANGES[name], grain)
    return Window(name, grain, since, until)


@dataclass(frozen=True, slots=True)
class TableView:
    """How a breakdown table is shown: sorted by which column, which way, how many rows."""

    sort: str
    descending: bool
    show_all: bool


def table_view(params: Mapping[str, str], columns: tuple[str, ...]) -> TableView:
    sort = params.get("sort", "cost")
    if sort not in columns:
        sort = "cost"
    return TableView(sort, params.get("dir", "desc") != "asc", params.get("top") == "all")


def stack(params: Mapping[str, str]) -> str:
    value = params.get("stack", "model")
    return value if value in STACKS else "model"


def before(params: Mapping[str, str]) -> datetime | None:
    """The keyset cursor of a request list: show requests created before this moment."""
    text = params.get("before")
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
