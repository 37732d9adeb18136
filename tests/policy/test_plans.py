"""The compiled-plan cache: reused per caller, never stale across a period roll-over or a change
of the runtime budgets, bounded in size; lease ids unique across engines."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from costwarden.errors import BudgetExceeded
from costwarden.policy.budgets import PeriodCache
from costwarden.policy.config import BudgetRule, PolicyConfig, RateLimitRule
from costwarden.policy.engine import AdmissionRequest, PolicyEngine
from costwarden.policy.events import MemoryEventSink
from costwarden.policy.plans import PlanCache
from costwarden.records import Principal, Tags
from costwarden.state.base import StateBackend, usd_to_units_up
from tests.policy.conftest import FakeClock

ALICE = Principal(key_id="k-alice", user="alice", team="ml")
BOB = Principal(key_id="k-bob", user="bob", team="web")
DAY = BudgetRule(name="daily", period="day", limit_usd=Decimal(10))
PER_USER = BudgetRule(name="per-user", scope={"user": "*"}, limit_usd=Decimal(10))
LAST_SECOND = datetime(2026, 11, 18, 23, 59, 59, 500000, tzinfo=UTC).timestamp()


def request(principal: Principal = ALICE, cost: str = "0.10") -> AdmissionRequest:
    return AdmissionRequest(
        principal=principal,
        tags=Tags(feature="chat"),
        model="gpt-4o",
        estimated_input_tokens=100,
        max_output_tokens=100,
        worst_case_units=usd_to_units_up(Decimal(cost)),
    )


def make(backend: StateBackend, clock: FakeClock, *rules: BudgetRule) -> PolicyEngine:
    return PolicyEngine(PolicyConfig(budgets=rules), backend, clock, events=MemoryEventSink())


async def counter_keys(engine: PolicyEngine, principal: Principal = ALICE) -> list[str]:
    admission = await engine.admit(request(principal))
    await engine.release(admission)
    return [b.counter.key for b in admission.budgets]


async def test_period_roll_over_names_the_new_counter_on_the_next_admission(
    backend: StateBackend,
) -> None:
    clock = FakeClock(LAST_SECOND)
    engine = make(backend, clock, DAY)
    assert await counter_keys(engine) == ["budget:global:day:2026-11-18"]
    clock.advance(1.0)  # 00:00:00.5 the next day: the cached plan's window has ended
    assert await counter_keys(engine) == ["budget:global:day:2026-11-19"]
    clock.now = LAST_SECOND  # a clock set back is served the period it is in, too
    assert await counter_keys(engine) == ["budget:global:day:2026-11-18"]


async def test_spend_of_the_old_period_does_not_block_the_new_one(
    backend: StateBackend,
) -> None:
    clock = FakeClock(LAST_SECOND)
    engine = make(backend, clock, BudgetRule(period="day", limit_usd=Decimal("0.10")))
    admission = await engine.admit(request())
    await engine.settle(admission, Decimal("0.10"), 200)
    with pytest.raises(BudgetExceeded):
        await engine.admit(request())
    clock.advance(1.0)
    await engine.admit(request())


async def test_runtime_budget_change_takes_effect_on_the_next_admission(
    backend: StateBackend, clock: FakeClock
) -> None:
    engine = make(backend, clock, DAY)
    assert await counter_keys(engine) == ["budget:global:day:2026-11-18"]
    tight = BudgetRule(name="alice", scope={"user": "alice"}, limit_usd=Decimal("0.05"))
    engine.set_runtime_budgets([tight])
    with pytest.raises(BudgetExceeded, match="'alice'"):
        await engine.admit(request())
    engine.set_runtime_budgets([tight.model_copy(update={"limit_usd": Decimal(1)})])
    assert await counter_keys(engine) == [
        "budget:global:day:2026-11-18",
        "budget:user=alice:month:2026-11",
    ]
    engine.set_runtime_budgets([DAY.model_copy(update={"period": "week"})])  # replaces "daily"
    assert await counter_keys(engine) == ["budget:global:week:2026-W47"]


def plan_cache(max_entries: int, *rules: BudgetRule) -> PlanCache:
    config = PolicyConfig(
        budgets=rules, rate_limits=(RateLimitRule(scope={"key": "*"}, rpm=10, tpm=1000),)
    )
    return PlanCache(config, rules, PeriodCache(ZoneInfo("UTC")), max_entries)


def test_one_caller_reuses_its_compiled_plan_and_another_gets_its_own(clock: FakeClock) -> None:
    cache = plan_cache(16, PER_USER)
    tags = Tags(feature="chat")
    first = cache.compiled(ALICE, tags, "gpt-4o", clock.now)
    assert cache.compiled(ALICE, tags, "gpt-4o", clock.now + 60) is first
    bob = cache.compiled(BOB, tags, "gpt-4o", clock.now)
    assert [c.key for c in first.counters] == ["budget:user=alice:month:2026-11"]
    assert [c.key for c in bob.counters] == ["budget:user=bob:month:2026-11"]
    assert [(r.key, r.cost) for r in bob.rates] == [
        ("rate:key=k-bob:rpm", 1),
        ("rate:key=k-bob:tpm", None),  # charged each request's own tokens
    ]
    assert bob.counters[0].cap_units == 10 * 10**8
    assert bob.velocity is None and bob.thresholds


def test_the_cache_stays_within_its_bound(clock: FakeClock) -> None:
    cache = plan_cache(2, PER_USER)
    users = [Principal(key_id=f"k-{n}", user=f"u{n}") for n in range(5)]
    compiled = [cache.compiled(user, Tags(), "gpt-4o", clock.now) for user in users]
    assert len(cache) <= 2
    assert [c.counters[0].key for c in compiled] == [
        f"budget:user=u{n}:month:2026-11" for n in range(5)
    ]


def test_a_cache_needs_room_for_one_entry() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        plan_cache(0)


async def test_lease_ids_are_unique_across_engines_sharing_a_backend(
    backend: StateBackend, clock: FakeClock
) -> None:
    engines = [make(backend, clock, DAY) for _ in range(2)]
    admissions = [await engine.admit(request()) for engine in engines for _ in range(50)]
    assert len({a.lease_id for a in admissions}) == 100
