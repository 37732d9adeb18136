"""Budgets set at run time on the engine, and budget status, on both counter backends."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from costwarden.errors import BudgetExceeded
from costwarden.policy.config import BudgetRule, PolicyConfig
from costwarden.policy.engine import AdmissionRequest, PolicyEngine
from costwarden.policy.events import MemoryEventSink
from costwarden.records import Principal
from costwarden.state.base import StateBackend
from tests.policy.conftest import FakeClock
from tests.support.admissions import ALICE, admission_request

BOB = Principal(key_id="k-bob", user="bob", team="web")
ORG = BudgetRule(name="org", limit_usd=Decimal(100))


def request(principal: Principal = ALICE, cost: str = "0.10") -> AdmissionRequest:
    return admission_request(cost, principal)


def make(backend: StateBackend, clock: FakeClock, *config_rules: BudgetRule) -> PolicyEngine:
    return PolicyEngine(
        PolicyConfig(budgets=config_rules), backend, clock, events=MemoryEventSink()
    )


async def spend(engine: PolicyEngine, principal: Principal, cost: str) -> None:
    admission = await engine.admit(request(principal, cost))
    await engine.settle(admission, Decimal(cost), 150)


async def test_runtime_budget_applies_to_the_next_admission_and_removal_lifts_it(
    backend: StateBackend, clock: FakeClock
) -> None:
    engine = make(backend, clock)
    assert not engine.has_controls
    await spend(engine, ALICE, "0.30")  # no budget yet: no counter is kept for alice
    cap = BudgetRule(name="alice-cap", scope={"user": "alice"}, limit_usd=Decimal("0.35"))
    engine.set_runtime_budgets([cap])
    assert engine.has_controls
    await spend(engine, ALICE, "0.30")
    with pytest.raises(BudgetExceeded, match="'alice-cap'"):
        await engine.admit(request(ALICE))
    await engine.admit(request(BOB))  # bob is not in alice's budget
    engine.set_runtime_budgets([cap.model_copy(update={"limit_usd": Decimal("0.40")})])
    await engine.admit(request(ALICE))  # a raised limit keeps what was spent: 0.30 + 0.10
    with pytest.raises(BudgetExceeded, match="'alice-cap'"):
        await engine.admit(request(ALICE, "0.01"))
    engine.set_runtime_budgets([])
    await engine.admit(request(ALICE))


async def test_runtime_rule_replaces_the_config_rule_of_the_same_name(
    backend: StateBackend, clock: FakeClock
) -> None:
    tight = BudgetRule(name="ml", scope={"team": "ml"}, limit_usd=Decimal("0.15"))
    engine = make(backend, clock, tight, ORG)
    await spend(engine, ALICE, "0.10")
    with pytest.raises(BudgetExceeded, match="'ml'"):
        await engine.admit(request(ALICE))
    loose = tight.model_copy(update={"limit_usd": Decimal(1)})
    engine.set_runtime_budgets([loose])
    assert [(b.rule.name, b.source) for b in engine.budgets] == [
        ("org", "config"),
        ("ml", "runtime"),
    ]
    await engine.admit(request(ALICE))
    engine.set_runtime_budgets([])  # the config rule applies again
    with pytest.raises(BudgetExceeded, match="'ml'"):
        await engine.admit(request(ALICE))


async def test_runtime_rules_must_be_named_and_unique(
    backend: StateBackend, clock: FakeClock
) -> None:
    engine = make(backend, clock, ORG)
    with pytest.raises(ValueError, match="needs a name"):
        engine.set_runtime_budgets([BudgetRule(limit_usd=Decimal(1))])
    twice = BudgetRule(name="x", limit_usd=Decimal(1))
    with pytest.raises(ValueError, match="two runtime budgets"):
        engine.set_runtime_budgets([twice, twice])
    assert [b.rule for b in engine.budgets] == [ORG]  # a refused set changes nothing


async def test_status_reports_spent_reserved_and_remaining_per_counter(
    backend: StateBackend, clock: FakeClock
) -> None:
    per_user = BudgetRule(name="per-user", scope={"user": "*"}, limit_usd=Decimal("5"))
    team_ml = BudgetRule(scope={"team": "ml"}, period="day", limit_usd=Decimal("2"))
    engine = make(backend, clock, ORG, team_ml)
    engine.set_runtime_budgets([per_user])
    await spend(engine, ALICE, "0.25")
    await spend(engine, BOB, "0.50")
    await engine.admit(request(ALICE, "0.125"))  # in flight: reserved, not spent

    alice = {s.budget: s for s in await engine.budget_status({"user": "alice"})}
    assert set(alice) == {"org", "team=ml/day", "per-user"}
    mine = alice["per-user"]
    assert (mine.source, mine.counter) == ("runtime", "budget:user=alice:month:2026-11")
    assert (mine.spent_usd, mine.reserved_usd) == (Decimal("0.25"), Decimal("0.125"))
    assert mine.remaining_usd == Decimal("4.625")
    assert mine.resets_at == datetime(2026, 12, 1, tzinfo=UTC)
    assert alice["org"].spent_usd == Decimal("0.75")
    assert alice["team=ml/day"].window == "2026-11-18"
    assert alice["team=ml/day"].to_dict()["remaining_usd"] == "1.625"


async def test_status_without_values_lists_per_value_rules_without_numbers(
    backend: StateBackend, clock: FakeClock
) -> None:
    per_user = BudgetRule(name="per-user", scope={"user": "*", "team": "ml"}, limit_usd=Decimal(5))
    engine = make(backend, clock, ORG)
    engine.set_runtime_budgets([per_user])
    statuses = {s.budget: s for s in await engine.budget_status()}
    assert statuses["org"].spent_usd == Decimal(0)
    pending = statuses["per-user"].to_dict()
    assert pending["needs"] == ["user"] and pending["counter"] is None
    assert pending["spent_usd"] is None and pending["limit_usd"] == "5"
    # A rule for another value of a given dimension does not concern the question asked.
    web = await engine.budget_status({"team": "web", "user": "bob"})
    assert [s.budget for s in web] == ["org"]
