"""Rollups (the cube), the record listing, the alert log and leader leases, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from costwarden.ledger import Store
from costwarden.ledger.cube import CubeQueryError
from costwarden.ledger.rows import encode_pending, row_from_line, row_from_record
from costwarden.ledger.store import StoredAlert
from tests.ledger.factory import make_record

T0 = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)  # two hours before a UTC day ends
WRITER = "4242-1700000000000000000-deadbeef"


async def seed(store: Store) -> None:
    """Six records over three hours and two days, three users, two teams, two models."""
    specs = [
        (T0 + timedelta(minutes=5), "alice", "ml", "gpt-4o-mini", Decimal("0.000123")),
        (T0 + timedelta(minutes=50), "bob", "ml", "gpt-4o", Decimal("0.25")),
        (T0 + timedelta(hours=1, minutes=1), "alice", "ml", "gpt-4o", Decimal("1.000000001")),
        (T0 + timedelta(hours=1, minutes=2), "carol", "web", "gpt-4o-mini", None),
        (T0 + timedelta(hours=2, minutes=3), "carol", "web", "gpt-4o-mini", Decimal("0.5")),
        (T0 + timedelta(hours=2, minutes=4), None, None, "gpt-4o", Decimal("0.02")),
    ]
    records = [
        make_record(i, created_at=at, user=user, team=team, model=model, cost=cost)
        for i, (at, user, team, model, cost) in enumerate(specs)
    ]
    await store.insert_rows([row_from_record(r) for r in records])


async def test_hour_cube_matches_the_records_hour_by_hour(ledger_store: Store) -> None:
    await seed(ledger_store)
    assert await ledger_store.refresh_rollups() == 3
    assert await ledger_store.refresh_rollups() == 0  # nothing dirty any more
    rows = await ledger_store.cube("hour", ["start", "model"], T0, T0 + timedelta(hours=3))
    got = {(r.group["start"], r.group["model"]): (r.requests, r.cost) for r in rows}
    for hour in range(3):
        start = T0 + timedelta(hours=hour)
        spend = await ledger_store.spend(["model"], start, start + timedelta(hours=1))
        for row in spend:
            key = (start.isoformat(), row.group["model"])
            assert got.pop(key) == (row.requests, row.cost)
    assert got == {}


async def test_day_cube_and_filters(ledger_store: Store) -> None:
    await seed(ledger_store)
    await ledger_store.refresh_rollups()
    day1, day2 = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)
    rows = await ledger_store.cube("day", ["start", "team"], day1, day2 + timedelta(days=1))
    table = {(r.group["start"], r.group["team"]): r for r in rows}
    # one rounding per cell: 1.000000001 stays exact at nano-dollar precision
    ml1 = table[(day1.isoformat(), "ml")]
    assert (ml1.requests, ml1.cost) == (3, Decimal("1.250123001"))
    web1 = table[(day1.isoformat(), "web")]
    assert (web1.requests, web1.unknown_cost_requests, web1.cost) == (1, 1, Decimal(0))
    web2 = table[(day2.isoformat(), "web")]
    assert (web2.requests, web2.unknown_cost_requests, web2.cost) == (1, 0, Decimal("0.5"))
    assert set(table) == {(day1.isoformat(), "ml"), (day1.isoformat(), "web"),
                          (day2.isoformat(), "web"), (day2.isoformat(), None)}
    none_team = await ledger_store.cube("day", ["user"], day1, day2 + timedelta(days=1),
                                        {"team": None})
    assert [(r.group["user"], r.cost) for r in none_team] == [(None, Decimal("0.02"))]
    alice = await ledger_store.cube("hour", [], day1, day2 + timedelta(days=1), {"user": "alice"})
    assert (alice[0].requests, alice[0].cost) == (2, Decimal("1.000123001"))


async def test_late_rows_and_replacements_refresh_their_own_hour(ledger_store: Store) -> None:
    await seed(ledger_store)
    await ledger_store.refresh_rollups()
    late = make_record(99, created_at=T0 + timedelta(minutes=30), user="dave", cost=Decimal("2"))
    pending = row_from_line(orjson.loads(encode_pending(late)), WRITER)
    await ledger_store.insert_rows([pending])
    assert await ledger_store.refresh_rollups() == 1
    [row] = await ledger_store.cube("hour", [], T0, T0 + timedelta(hours=1), {"user": "dave"})
    assert (row.requests, row.unknown_cost_requests, row.cost) == (1, 1, Decimal(0))
    await ledger_store.insert_rows([row_from_record(late)])  # the final line replaces it
    await ledger_store.refresh_rollups()
    [row] = await ledger_store.cube("hour", [], T0, T0 + timedelta(hours=1), {"user": "dave"})
    assert (row.requests, row.unknown_cost_requests, row.cost) == (1, 0, Decimal(2))
    [day] = await ledger_store.cube("day", [], T0, T0 + timedelta(hours=1), {"user": "dave"})
    assert day.cost == Decimal(2)


async def test_interrupted_rows_lose_their_cost_in_the_cube(ledger_store: Store) -> None:
    record = make_record(0, created_at=T0, user="erin", cost=Decimal("3"))
    await ledger_store.insert_rows([row_from_line(orjson.loads(encode_pending(record)), WRITER)])
    await ledger_store.refresh_rollups()
    assert await ledger_store.interrupt_in_flight(WRITER) == 1
    assert await ledger_store.refresh_rollups() == 1
    [row] = await ledger_store.cube("hour", ["user"], T0, T0 + timedelta(hours=1))
    assert (row.requests, row.unknown_cost_requests) == (1, 1)


async def test_full_rebuild_gives_the_same_cube(ledger_store: Store) -> None:
    await seed(ledger_store)
    await ledger_store.refresh_rollups()
    before = await ledger_store.cube("hour", ["start", "user", "model"], T0, T0 + timedelta(1))
    assert await ledger_store.mark_rollups_dirty() == 3
    assert await ledger_store.refresh_rollups(max_hours=2) == 2
    assert await ledger_store.refresh_rollups(max_hours=2) == 1
    after = await ledger_store.cube("hour", ["start", "user", "model"], T0, T0 + timedelta(1))
    assert after == before


async def test_cube_refuses_unknown_dimensions(ledger_store: Store) -> None:
    with pytest.raises(CubeQueryError):
        await ledger_store.cube("hour", ["session"], T0, T0 + timedelta(hours=1))
    with pytest.raises(CubeQueryError):
        await ledger_store.cube("week", ["user"], T0, T0 + timedelta(hours=1))  # type: ignore[arg-type]


async def test_list_records_newest_first_with_paging(ledger_store: Store) -> None:
    await seed(ledger_store)
    until = T0 + timedelta(days=1)
    first = await ledger_store.list_records(T0, until, None, limit=4)
    assert [r.created_at for r in first] == sorted((r.created_at for r in first), reverse=True)
    rest = await ledger_store.list_records(T0, until, None, limit=4, before=first[-1].created_at)
    assert len(first) == 4 and len(rest) == 2
    assert {r.request_id for r in first}.isdisjoint(r.request_id for r in rest)
    carol = await ledger_store.list_records(None, None, {"user": "carol"}, limit=10)
    assert [r.principal.user if r.principal else None for r in carol] == ["carol", "carol"]


async def test_alert_log_round_trips_and_filters_by_kind_prefix(ledger_store: Store) -> None:
    def alert(kind: str, minutes: int) -> StoredAlert:
        return StoredAlert(T0 + timedelta(minutes=minutes), kind, "warning", f"t {kind}", "x",
                           "team:ml", f"d:{kind}", {"impact per week": "$1.00"})

    await ledger_store.record_alerts([alert("anomaly.spend", 1), alert("anomalyx", 2),
                                      alert("budget.threshold", 3)])
    window = (T0, T0 + timedelta(hours=1))
    every = await ledger_store.list_alerts(*window)
    assert [a.kind for a in every] == ["budget.threshold", "anomalyx", "anomaly.spend"]
    assert every[0].fields == {"impact per week": "$1.00"} and every[0].alert_id is not None
    anomalies = await ledger_store.list_alerts(*window, kinds=["anomaly"])
    assert [a.kind for a in anomalies] == ["anomaly.spend"]
    assert len(await ledger_store.list_alerts(*window, limit=1)) == 1


async def test_leases_exclude_other_holders_until_expiry(ledger_store: Store) -> None:
    assert await ledger_store.try_lease("monitor", "a", 30, now=1000.0)
    assert await ledger_store.try_lease("monitor", "a", 30, now=1010.0)  # renew
    assert not await ledger_store.try_lease("monitor", "b", 30, now=1020.0)
    assert await ledger_store.try_lease("monitor", "b", 30, now=1041.0)  # a's lease ran out
    assert not await ledger_store.try_lease("monitor", "a", 30, now=1042.0)


@pytest.mark.parametrize("dimension", ["team", "user", "model", "key", "feature", "env"])
async def test_the_narrow_rollup_agrees_with_the_full_cube(ledger_store: Store, dimension: str
                                                           ) -> None:
    await seed(ledger_store)
    await ledger_store.refresh_rollups()
    window = (T0 - timedelta(days=1), T0 + timedelta(days=2))
    for grain in ("hour", "day"):
        narrow = await ledger_store.cube(grain, ["start", dimension], *window)  # one dimension
        wide = await ledger_store.cube(grain, ["start", dimension, "provider"], *window)
        summed: dict[tuple[str | None, ...], tuple[int, Decimal]] = {}
        for row in wide:
            key = (row.group["start"], row.group[dimension])
            requests, cost = summed.get(key, (0, Decimal(0)))
            summed[key] = (requests + row.requests, cost + row.cost)
        got = {(r.group["start"], r.group[dimension]): (r.requests, r.cost) for r in narrow}
        assert got == summed
        [total] = await ledger_store.cube(grain, [], *window)  # the "global" rows
        assert total.requests == 6 and total.cost == Decimal("1.770123001")
