"""Money text, escaping, the day/hour split of a range, and chart axis tops."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from costwarden.dashboard.charts import nice_ceiling
from costwarden.dashboard.markup import attr, esc, money, url
from costwarden.dashboard.params import window
from costwarden.dashboard.queries import day_split

D = Decimal


def test_money_is_cents_and_three_digits_under_a_cent() -> None:
    assert money(D("1234.567")) == "$1,234.57"
    assert money(D("0.5")) == "$0.50"
    assert money(D("0.01")) == "$0.01"
    assert money(D("0")) == "$0.00"
    assert money(D("0.000123456")) == "$0.000123"
    assert money(D("0.00999")) == "$0.00999"
    assert money(D("-2.5")) == "-$2.50"
    assert money(D("1E+3")) == "$1,000.00"


def test_escaping_covers_text_attributes_and_urls() -> None:
    assert esc('<a href="x">&') == "&lt;a href=&quot;x&quot;&gt;&amp;"
    assert attr("it's") == '"it&#x27;s"'
    assert url("/p", {"value": "a&b=<c>", "skip": None}) == "/p?value=a%26b%3D%3Cc%3E"


def test_a_range_is_whole_days_plus_the_hours_at_either_end() -> None:
    since = datetime(2026, 3, 13, 16, tzinfo=UTC)
    until = datetime(2026, 3, 20, 16, tzinfo=UTC)
    assert day_split(since, until) == [
        ("hour", since, datetime(2026, 3, 14, tzinfo=UTC)),
        ("day", datetime(2026, 3, 14, tzinfo=UTC), datetime(2026, 3, 20, tzinfo=UTC)),
        ("hour", datetime(2026, 3, 20, tzinfo=UTC), until),
    ]
    midnight = datetime(2026, 3, 1, tzinfo=UTC)
    assert day_split(midnight, datetime(2026, 3, 3, tzinfo=UTC)) == [
        ("day", midnight, datetime(2026, 3, 3, tzinfo=UTC))
    ]
    short = (datetime(2026, 3, 1, 5, tzinfo=UTC), datetime(2026, 3, 1, 9, tzinfo=UTC))
    assert day_split(*short) == [("hour", *short)]


def test_windows_end_with_the_current_bucket() -> None:
    now = datetime(2026, 3, 20, 15, 30, tzinfo=UTC)
    hourly = window({"range": "24h"}, now)
    assert (hourly.since, hourly.until) == (
        datetime(2026, 3, 19, 16, tzinfo=UTC), datetime(2026, 3, 20, 16, tzinfo=UTC)
    )
    assert len(hourly.starts()) == 24
    daily = window({"range": "30d", "grain": "day"}, now)
    assert daily.until == datetime(2026, 3, 21, tzinfo=UTC) and len(daily.starts()) == 30
    assert window({"range": "1y", "grain": "week"}, now).range_name == "7d"
    assert window({"range": "30d", "grain": "hour"}, now).grain == "day"  # 720 bars: too many


def test_axis_tops_are_round() -> None:
    assert nice_ceiling(D("0")) == 1
    assert nice_ceiling(D("0.0031")) == D("0.004")
    assert nice_ceiling(D("1.7")) == 2
    assert nice_ceiling(D("20")) == 20
    assert nice_ceiling(D("20136")) == 25000
    assert nice_ceiling(D("930")) == 1000
