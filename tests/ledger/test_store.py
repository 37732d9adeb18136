"""The Store contract, run identically against SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal, localcontext

import pytest

from costwarden.config import LedgerConfig
from costwarden.ledger import Checkpoint, ReportQueryError, Store, open_store, row_from_record
from costwarden.policy.config import BudgetRule
from costwarden.records import Status
from tests.ledger.factory import BASE_TIME, make_record


async def test_migrate_is_idempotent(ledger_store: Store, ledger_config: LedgerConfig) -> None:
    await ledger_store.migrate()
    again = await open_store(ledger_config)
    try:
        await again.migrate()
    finally:
        await again.close()
    assert await ledger_store.count_records() == 0


async def test_record_round_trips_exactly(ledger_store: Store) -> None:
    record = make_record(cost=Decimal("0.1234567890123456789012345678"))
    await ledger_store.insert_rows([row_from_record(record)])
    assert await ledger_store.get_record(record.request_id) == record
    assert await ledger_store.get_record("cw-missing") is None


async def test_record_without_principal_or_cost_round_trips(ledger_store: Store) -> None:
    record = make_record(cost=None, user=None, team=None, status=Status.UPSTREAM_ERROR)
    record.error_type, record.error_message, record.http_status = "upstream_error", "boom", 502
    await ledger_store.insert_rows([row_from_record(record)])
    stored = await ledger_store.get_record(record.request_id)
    assert stored == record
    assert stored is not None and stored.principal is None and stored.cost is None


async def test_insert_is_idempotent_first_write_wins(ledger_store: Store) -> None:
    records = [make_record(i) for i in range(5)]
    rows = [row_from_record(r) for r in records]
    await ledger_store.insert_rows(rows)
    changed = dataclasses.replace(records[0], cost=Decimal(99))
    await ledger_store.insert_rows([*rows, row_from_record(changed)])
    assert await ledger_store.count_records() == 5
    assert await ledger_store.all_request_ids() == {r.request_id for r in records}
    first = await ledger_store.get_record(records[0].request_id)
    assert first is not None and first.cost == Decimal("0.000123")


async def test_thousand_tiny_costs_sum_exactly(ledger_store: Store) -> None:
    rows = [row_from_record(make_record(i, cost=Decimal("0.000000123"))) for i in range(1000)]
    await ledger_store.insert_rows(rows)
    (total,) = await ledger_store.spend([])
    assert total.requests == 1000
    assert total.cost == Decimal("0.000123")
    assert str(total.cost.normalize()) == "0.000123"


async def test_high_precision_costs_sum_without_rounding(ledger_store: Store) -> None:
    costs = [Decimal("0.1234567890123456789012345678"), Decimal("12345.000000000000000000000001")]
    await ledger_store.insert_rows(
        [row_from_record(make_record(i, cost=c)) for i, c in enumerate(costs)]
    )
    (total,) = await ledger_store.spend([])
    with localcontext(prec=100):  # far more digits than the sum needs: exact
        expected = sum(costs, Decimal(0))
    assert total.cost == expected
    assert len(expected.as_tuple().digits) > 28  # more than a default Decimal context keeps


async def test_unknown_costs_are_counted_not_summed(ledger_store: Store) -> None:
    rows = [
        row_from_record(make_record(0, cost=Decimal("0.5"))),
        row_from_record(make_record(1, cost=None)),
        row_from_record(make_record(2, cost=None)),
    ]
    await ledger_store.insert_rows(rows)
    (total,) = await ledger_store.spend([])
    assert (total.requests, total.cost, total.unknown_cost_requests) == (3, Decimal("0.5"), 2)


async def test_spend_groups_and_totals(ledger_store: Store) -> None:
    records = [
        make_record(0, user="alice", team="ml", cost=Decimal("0.10")),
        make_record(1, user="alice", team="ml", cost=Decimal("0.05"), model="gpt-4o"),
        make_record(2, user="bob", team="ml", cost=Decimal("0.01")),
        make_record(3, user="carol", team="web", cost=Decimal("0.001")),
        make_record(4, user=None, team=None, cost=Decimal("0.0001")),
    ]
    await ledger_store.insert_rows([row_from_record(r) for r in records])

    by_team = await ledger_store.spend(["team"])
    assert [(r.group["team"], r.requests, r.cost) for r in by_team] == [
        (None, 1, Decimal("0.0001")),
        ("ml", 3, Decimal("0.16")),
        ("web", 1, Decimal("0.001")),
    ]
    by_user_model = await ledger_store.spend(["user", "model"], filters={"team": "ml"})
    assert [(r.group["user"], r.group["model"], r.cost) for r in by_user_model] == [
        ("alice", "gpt-4o", Decimal("0.05")),
        ("alice", "gpt-4o-mini", Decimal("0.10")),
        ("bob", "gpt-4o-mini", Decimal("0.01")),
    ]
    alice = by_user_model[1]
    assert (alice.input_tokens, alice.output_tokens, alice.cached_tokens) == (100, 20, 10)


async def test_spend_by_day_and_time_bounds(ledger_store: Store) -> None:
    day = timedelta(days=1)
    records = [make_record(i, created_at=BASE_TIME + i * day) for i in range(3)]
    await ledger_store.insert_rows([row_from_record(r) for r in records])
    by_day = await ledger_store.spend(["day"])
    assert [r.group["day"] for r in by_day] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    # since is inclusive, until exclusive
    window = await ledger_store.spend(["day"], since=BASE_TIME + day, until=BASE_TIME + 2 * day)
    assert [r.group["day"] for r in window] == ["2026-03-02"]
    assert await ledger_store.count_records(since=BASE_TIME + day) == 2
    assert await ledger_store.count_records(filters={"day": "2026-03-03"}) == 1


async def test_spend_filters_on_every_dimension(ledger_store: Store) -> None:
    record = make_record(0)
    await ledger_store.insert_rows([row_from_record(record)])
    filters = {
        "user": "alice",
        "team": "ml",
        "model": "gpt-4o-mini",
        "feature": "search",
        "env": "prod",
        "key": "key_test",
        "day": "2026-03-01",
        "provider": "openai",
        "status": "ok",
    }
    for name, value in filters.items():
        other = "2026-03-02" if name == "day" else "other"
        assert await ledger_store.count_records(filters={name: value}) == 1, name
        assert await ledger_store.count_records(filters={name: other}) == 0, name
    (row,) = await ledger_store.spend(list(filters), filters=filters)
    assert row.group == filters


async def test_empty_ledger_has_no_spend_rows(ledger_store: Store) -> None:
    assert await ledger_store.spend([]) == []
    assert await ledger_store.spend(["user"]) == []


async def test_unknown_dimension_is_refused(ledger_store: Store) -> None:
    with pytest.raises(ReportQueryError, match="colour"):
        await ledger_store.spend(["colour"])
    with pytest.raises(ReportQueryError, match="colour"):
        await ledger_store.count_records(filters={"colour": "red"})
    with pytest.raises(ReportQueryError, match="day filter"):
        await ledger_store.spend(["user"], filters={"day": "yesterday"})


async def test_checkpoints_move_forward_only(ledger_store: Store) -> None:
    assert await ledger_store.get_checkpoint("seg-a") is None
    await ledger_store.insert_rows([], Checkpoint("seg-a", 100))
    await ledger_store.insert_rows([], Checkpoint("seg-a", 40))
    assert await ledger_store.get_checkpoint("seg-a") == 100
    await ledger_store.delete_checkpoint("seg-a")
    assert await ledger_store.get_checkpoint("seg-a") is None


async def test_rows_and_checkpoint_commit_together(ledger_store: Store) -> None:
    records = [make_record(i) for i in range(3)]
    await ledger_store.insert_rows([row_from_record(r) for r in records], Checkpoint("seg-b", 7))
    assert await ledger_store.count_records() == 3
    assert await ledger_store.get_checkpoint("seg-b") == 7


async def test_budget_rules_round_trip_exactly_in_name_order(ledger_store: Store) -> None:
    rules = [
        BudgetRule(
            name="alpha",
            scope={"user": "*", "model": "gpt-4o"},
            period="day",
            limit_usd=Decimal("0.000000123456789"),
            soft_thresholds=(90, 25),
        ),
        BudgetRule(name="Zeta", scope={"env": "dev"}, period="lifetime", limit_usd=Decimal(7)),
        BudgetRule(name="beta", limit_usd=Decimal("12345678.90")),
    ]
    for rule in rules:
        await ledger_store.upsert_budget_rule(rule)
    listed = await ledger_store.list_budget_rules()
    # Code-point order on both backends, whatever the database collation.
    assert [r.name for r in listed] == ["Zeta", "alpha", "beta"]
    assert listed == sorted(rules, key=lambda r: str(r.name))
    assert listed[1].limit_usd == Decimal("0.000000123456789")
    assert listed[1].soft_thresholds == (25, 90)


async def test_budget_rule_upsert_replaces_and_delete_removes(
    ledger_store: Store, ledger_config: LedgerConfig
) -> None:
    await ledger_store.upsert_budget_rule(BudgetRule(name="ml", limit_usd=Decimal(10)))
    changed = BudgetRule(name="ml", scope={"team": "ml"}, period="week", limit_usd=Decimal("2.5"))
    await ledger_store.upsert_budget_rule(changed)
    replica = await open_store(ledger_config)  # another process sharing the database
    try:
        assert await replica.list_budget_rules() == [changed]
        assert await replica.delete_budget_rule("ml") is True
    finally:
        await replica.close()
    assert await ledger_store.list_budget_rules() == []
    assert await ledger_store.delete_budget_rule("ml") is False


async def test_budget_rule_needs_a_name(ledger_store: Store) -> None:
    with pytest.raises(ValueError, match="needs a name"):
        await ledger_store.upsert_budget_rule(BudgetRule(limit_usd=Decimal(1)))
    assert await ledger_store.list_budget_rules() == []
