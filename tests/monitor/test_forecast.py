"""Forecast arithmetic without a ledger: rate, spread, month bounds, cap dates."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from costwarden.monitor.forecast import (
    cap_hit,
    daily_spread,
    lookback_windows,
    month_of,
    project,
    remaining_days,
    robust_rate,
)

D = Decimal
UTC_ZONE = ZoneInfo("UTC")


def test_robust_rate_drops_one_spike_and_one_dip() -> None:
    days = [D(1), D(2), D(3), D(4), D(5), D(6), D(100)]
    assert robust_rate(days) == D(4)
    assert robust_rate([D(2), D(4)]) == D(3)  # too few days to trim
    assert robust_rate([]) == D(0)


def test_daily_spread_is_the_sample_standard_deviation() -> None:
    assert daily_spread([D(2), D(4), D(4), D(4), D(5), D(5), D(7), D(9)]) ** 2 == D(32) / D(7)
    assert daily_spread([D(3)]) == D(0)


def test_month_bounds_follow_the_policy_timezone_across_dst() -> None:
    new_york = ZoneInfo("America/New_York")
    month = month_of("2026-03", datetime(2026, 1, 1, tzinfo=UTC), new_york)
    assert month.start == datetime(2026, 3, 1, 5, tzinfo=UTC)
    assert month.end == datetime(2026, 4, 1, 4, tzinfo=UTC)  # clocks went forward on Mar 8
    assert remaining_days(month, month.start) == D(743) / D(24)
    assert month_of(None, datetime(2026, 12, 31, 23, tzinfo=UTC), UTC_ZONE).label == "2026-12"
    assert month_of(None, datetime(2027, 1, 1, 2, tzinfo=UTC), new_york).label == "2026-12"
    with pytest.raises(ValueError, match="2026-12"):
        month_of("december", datetime(2026, 1, 1, tzinfo=UTC), UTC_ZONE)


def test_remaining_days_is_zero_once_past_and_whole_when_ahead() -> None:
    month = month_of("2026-02", datetime(2026, 1, 1, tzinfo=UTC), UTC_ZONE)
    assert remaining_days(month, datetime(2026, 3, 5, tzinfo=UTC)) == 0
    assert remaining_days(month, datetime(2026, 1, 5, tzinfo=UTC)) == 28
    assert remaining_days(month, datetime(2026, 2, 27, 18, tzinfo=UTC)) == D("1.25")


def test_lookback_is_the_seven_complete_days_before_now() -> None:
    month = month_of("2026-03", datetime(2026, 3, 1, tzinfo=UTC), UTC_ZONE)
    windows = lookback_windows(month, datetime(2026, 3, 3, 15, tzinfo=UTC))
    assert windows[0][0] == datetime(2026, 2, 24, tzinfo=UTC)
    assert windows[-1] == (datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC))


def test_projection_and_interval() -> None:
    month = month_of("2026-03", datetime(2026, 3, 1, tzinfo=UTC), UTC_ZONE)
    now = datetime(2026, 3, 25, tzinfo=UTC)  # 7 days left
    days = [D(4)] * 6 + [D(11)]  # mean 5, sample variance 7
    item = project({}, month, D(100), days, now)
    assert item.daily_rate == D(4) and item.remaining_days == 7
    assert item.projected == D(128)
    half = D("1.645") * D(7).sqrt() * (D(7) + D(49) / D(7)).sqrt()
    assert item.high == D(128) + half
    assert item.low == max(D(100), D(128) - half)
    flat = project({}, month, D(100), [D(4)] * 7, now)
    assert flat.low == flat.projected == flat.high == D(128)


def test_cap_hit_dates() -> None:
    month = month_of("2026-03", datetime(2026, 3, 1, tzinfo=UTC), UTC_ZONE)
    now = datetime(2026, 3, 25, tzinfo=UTC)
    item = project({}, month, D(100), [D(4)] * 7, now)
    assert cap_hit(item, "b", D(110), month, now).hit_on == date(2026, 3, 27)  # 2.5 days
    assert cap_hit(item, "b", D(100), month, now).status == "reached"
    later = cap_hit(item, "b", D(128), month, now)  # exactly at month end: not within it
    assert later.status == "not_this_period" and later.hit_on is None
    idle = project({}, month, D(1), [D(0)] * 7, now)
    assert cap_hit(idle, "b", D(2), month, now).status == "not_this_period"
