"""Budgets through the engine: scopes, refusals, period roll-over, soft-threshold events."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from costwarden.errors import BudgetExceeded
from costwarden.policy.budgets import current_period
from costwarden.policy.config import BudgetRule, EnvRule, PolicyConfig
from costwarden.policy.engine import AdmissionRequest, PolicyEngine
from costwarden.policy.events import BudgetEvent
from costwarden.records import Principal, Tags
from costwarden.state.base import usd_to_units_up

ALICE = Principal(key_id="k-alice", user="alice", team="ml")
BOB = Principal(key_id="k-bob", user="bob", team="ml")
CAROL = Principal(key_id="k-carol", user="carol", team="web")


def request(principal=ALICE, cost="0.10", model="gpt-4o", env=None) -> AdmissionRequest:
    return AdmissionRequest(
        principal=principal,
        tags=Tags(env=env),
        model=model,
        estimated_input_tokens=100,
        max_output_tokens=None,
        worst_case_units=usd_to_units_up(Decimal(cost)),
    )


def make(backend, clock, sink, *rules: BudgetRule, **config) -> PolicyEngine:
    return PolicyEngine(PolicyConfig(budgets=rules, **config), backend, clock, events=sink)


async def test_refusal_names_the_budget_its_numbers_and_when_it_resets(backend, clock, sink):
    rule = BudgetRule(scope={"team": "ml"}, period="month", limit_usd=Decimal("0.25"))
    engine = make(backend, clock, sink, rule)
    first = await engine.admit(request(cost="0.20"))
    await engine.settle(first, Decimal("0.20"), 500)
    with pytest.raises(BudgetExceeded) as caught:
        await engine.admit(request(cost="0.10"))
    error = caught.value
    assert error.http_status == 429
    assert "'team=ml/month'" in error.message
    assert "spent $0.20" in error.message and "$0.05 remaining" in error.message
    assert "resets at 2026-12-01T00:00:00+00:00" in error.message
    assert error.headers["x-should-retry"] == "false"
    reset = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    assert int(error.headers["retry-after"]) == math.ceil(reset - clock.now)
    assert error.details["scope_key"] == "budget:team=ml:month:2026-11"
    assert error.details["remaining_usd"] == "0.05"
    assert error.to_openai()["error"]["code"] == "budget_exceeded"


async def test_refusal_held_only_by_in_flight_reservations_is_retryable(backend, clock, sink):
    engine = make(backend, clock, sink, BudgetRule(period="day", limit_usd=Decimal("0.15")))
    await engine.admit(request(cost="0.10"))
    with pytest.raises(BudgetExceeded) as caught:
        await engine.admit(request(cost="0.10"))
    assert caught.value.headers == {"x-should-retry": "true", "retry-after": "1"}


async def test_each_value_of_a_star_scope_has_its_own_budget(backend, clock, sink):
    engine = make(backend, clock, sink, BudgetRule(scope={"user": "*"}, limit_usd=Decimal("0.1")))
    await engine.admit(request(ALICE))
    await engine.admit(request(BOB))  # bob is not starved by alice
    with pytest.raises(BudgetExceeded, match="user=\\*"):
        await engine.admit(request(ALICE))


async def test_rules_apply_only_to_matching_requests(backend, clock, sink):
    rule = BudgetRule(scope={"team": "ml", "model": "gpt-4o"}, limit_usd=Decimal("0.1"))
    engine = make(backend, clock, sink, rule)
    await engine.admit(request(ALICE))
    await engine.admit(request(ALICE, model="gpt-4o-mini"))
    await engine.admit(request(CAROL))
    with pytest.raises(BudgetExceeded):
        await engine.admit(request(BOB))


async def test_concurrent_admissions_through_the_engine_never_pass_the_cap(backend, clock, sink):
    engine = make(backend, clock, sink, BudgetRule(period="day", limit_usd=Decimal("1")))

    async def attempt() -> bool:
        try:
            await engine.admit(request(cost="0.07"))
        except BudgetExceeded:
            return False
        return True

    results = await asyncio.gather(*(attempt() for _ in range(200)))
    assert sum(results) == 14


async def test_a_new_period_is_a_new_counter(backend, clock, sink):
    engine = make(backend, clock, sink, BudgetRule(period="day", limit_usd=Decimal("0.1")))
    admission = await engine.admit(request())
    await engine.settle(admission, Decimal("0.1"), 10)
    with pytest.raises(BudgetExceeded):
        await engine.admit(request())
    clock.advance(24 * 3600)
    renewed = await engine.admit(request())
    assert renewed.budgets[0].counter.key == "budget:global:day:2026-11-19"


def test_periods_follow_the_policy_timezone():
    tz = ZoneInfo("America/New_York")
    late_evening = datetime(2026, 11, 30, 23, 30, tzinfo=tz).timestamp()  # 04:30 UTC Dec 1
    month = current_period("month", late_evening, tz)
    assert month.label == "2026-11"
    assert month.resets_at == datetime(2026, 12, 1, tzinfo=tz)
    week = current_period("week", late_evening, tz)
    assert week.label == "2026-W49" and week.resets_at == datetime(2026, 12, 7, tzinfo=tz)
    day = current_period("day", late_evening, tz)
    assert day.label == "2026-11-30"
    assert current_period("lifetime", late_evening, tz).resets_at is None


async def test_soft_thresholds_are_reported_once_each(backend, clock, sink):
    engine = make(backend, clock, sink, BudgetRule(name="ml-monthly", limit_usd=Decimal("1")))
    for cost in ("0.30", "0.30", "0.30", "0.10"):
        admission = await engine.admit(request(cost=cost))
        await engine.settle(admission, Decimal(cost), 10)
    thresholds = [e for e in sink.events if isinstance(e, BudgetEvent)]
    assert [(e.threshold_pct, e.spent_usd) for e in thresholds] == [
        (50, Decimal("0.6")),
        (80, Decimal("0.9")),
        (100, Decimal("1.0")),
    ]
    assert {e.budget for e in thresholds} == {"ml-monthly"}


async def test_first_refusal_of_a_budget_is_reported_once(backend, clock, sink):
    engine = make(backend, clock, sink, BudgetRule(limit_usd=Decimal("0.1")))
    for _ in range(3):
        with pytest.raises(BudgetExceeded):
            await engine.admit(request(cost="0.2"))
    exhausted = [e for e in sink.events if isinstance(e, BudgetEvent) and e.kind == "exhausted"]
    assert len(exhausted) == 1 and exhausted[0].scope_key.startswith("budget:global:month")


async def test_unknown_price_settles_the_reserved_amount(backend, clock, sink):
    engine = make(backend, clock, sink, BudgetRule(limit_usd=Decimal("1")))
    admission = await engine.admit(request(cost="0.40"))
    assert await engine.settle(admission, None, 10)
    assert not await engine.settle(admission, Decimal("0.01"), 10)  # idempotent
    assert await backend.usage(admission.budgets[0].counter.key) == (Decimal("0.4"), Decimal(0))


async def test_released_admission_frees_its_budget(backend, clock, sink):
    engine = make(backend, clock, sink, BudgetRule(limit_usd=Decimal("0.5")))
    admission = await engine.admit(request(cost="0.40"))
    assert await engine.release(admission)
    await engine.admit(request(cost="0.40"))


async def test_environment_budgets_apply_to_that_environment_only(backend, clock, sink):
    dev = EnvRule(budgets=(BudgetRule(period="day", limit_usd=Decimal("0.1")),))
    engine = make(backend, clock, sink, environments={"dev": dev})
    await engine.admit(request(env="dev"))
    with pytest.raises(BudgetExceeded, match="env=dev/day"):
        await engine.admit(request(env="dev"))
    await engine.admit(request(env="prod"))
    await engine.admit(request())


async def test_missing_max_tokens_reserves_the_default_output_bound(backend, clock, sink):
    engine = make(backend, clock, sink, default_max_output_tokens=256)
    admission = await engine.admit(request())
    assert admission.max_output_tokens == 256 and admission.reserved_tokens == 356


async def test_spend_already_sent_is_reserved_past_the_cap_and_charged(backend, clock, sink):
    # A request that cannot be stopped (a provider batch taken over from a dead worker) still
    # lands on the counters, so the next admission sees the cap passed.
    engine = make(backend, clock, sink, BudgetRule(period="day", limit_usd=Decimal("0.15")))
    first = await engine.admit(request(cost="0.10"))
    with pytest.raises(BudgetExceeded):
        await engine.admit(request(cost="0.10"))
    sent = await engine.admit_spent(request(cost="0.10"))
    await engine.settle(first, Decimal("0.10"), 100)
    await engine.settle(sent, Decimal("0.08"), 100)
    [status] = await engine.budget_status()
    assert status.spent_usd == Decimal("0.18") and status.reserved_usd == 0
    with pytest.raises(BudgetExceeded):
        await engine.admit(request(cost="0.01"))
