"""Batched settlement: every queued reservation is settled, once, in batches."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import pytest

from costwarden.gateway.settlement import SettlementBatcher
from costwarden.policy.config import BudgetRule, PolicyConfig
from costwarden.policy.engine import PolicyEngine
from costwarden.policy.events import BudgetEvent, MemoryEventSink
from costwarden.state.memory import MemoryStateBackend
from tests.support.admissions import admission_request


class CountingState(MemoryStateBackend):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def settle_many_now(self, settlements, now):  # type: ignore[no-untyped-def]
        self.batches.append(len(settlements))
        return super().settle_many_now(settlements, now)


async def test_requests_finishing_together_settle_in_one_batch() -> None:
    state, sink = CountingState(), MemoryEventSink()
    engine = PolicyEngine(
        PolicyConfig(budgets=(BudgetRule(limit_usd=Decimal("1")),)), state, events=sink
    )
    batcher = SettlementBatcher(engine)
    admissions = [await engine.admit(admission_request("0.20")) for _ in range(4)]
    for admission in admissions:
        batcher.settle(admission, Decimal("0.15"), 20)
    key = admissions[0].budgets[0].counter.key
    assert await state.usage(key) == (Decimal(0), Decimal("0.8"))  # not yet: queued
    await batcher.flush()
    assert state.batches == [4]
    assert await state.usage(key) == (Decimal("0.6"), Decimal(0))
    crossed = [e.threshold_pct for e in sink.events if isinstance(e, BudgetEvent)]
    assert crossed == [50]  # 0.45 → 0.60 crossed 50 % of the $1 budget, reported once


async def test_settlements_queued_while_a_batch_runs_form_the_next_one() -> None:
    state = CountingState()
    engine = PolicyEngine(PolicyConfig(budgets=(BudgetRule(limit_usd=Decimal("9")),)), state)
    batcher = SettlementBatcher(engine)
    first, second, third = [await engine.admit(admission_request("0.10")) for _ in range(3)]
    batcher.settle(first, Decimal("0.05"), 5)
    await asyncio.sleep(0)  # the batch of one starts
    batcher.settle(second, Decimal("0.05"), 5)
    batcher.settle(third, Decimal("0.05"), 5)
    await batcher.flush()
    assert state.batches == [1, 2]
    assert await state.usage(first.budgets[0].counter.key) == (Decimal("0.15"), Decimal(0))


async def test_a_failing_batch_is_logged_and_the_next_one_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing(MemoryStateBackend):
        fail = True

        def settle_many_now(self, settlements, now):  # type: ignore[no-untyped-def]
            if self.fail:
                self.fail = False
                raise ConnectionError("state backend down")
            return super().settle_many_now(settlements, now)

    state = Failing()
    engine = PolicyEngine(PolicyConfig(budgets=(BudgetRule(limit_usd=Decimal("9")),)), state)
    batcher = SettlementBatcher(engine)
    lost, kept = [await engine.admit(admission_request("0.10")) for _ in range(2)]
    with caplog.at_level(logging.ERROR, logger="costwarden.gateway"):
        batcher.settle(lost, Decimal("0.05"), 5)
        await batcher.flush()
    assert "settling 1 reservations failed" in caplog.text
    batcher.settle(kept, Decimal("0.05"), 5)
    await batcher.flush()
    # The failed one still holds its reservation (its lease will return it); the other settled.
    assert await state.usage(kept.budgets[0].counter.key) == (Decimal("0.05"), Decimal("0.1"))


async def test_in_process_a_batch_is_a_callback_in_the_next_loop_iteration() -> None:
    state = CountingState()
    engine = PolicyEngine(PolicyConfig(budgets=(BudgetRule(limit_usd=Decimal("9")),)), state)
    batcher = SettlementBatcher(engine)
    first, second = [await engine.admit(admission_request("0.10")) for _ in range(2)]
    tasks = len(asyncio.all_tasks())
    batcher.settle(first, Decimal("0.05"), 5)
    batcher.settle(second, Decimal("0.05"), 5)
    assert len(asyncio.all_tasks()) == tasks  # no task: nothing in an in-process batch waits
    await asyncio.sleep(0)
    assert state.batches == [2]
    assert await state.usage(first.budgets[0].counter.key) == (Decimal("0.1"), Decimal(0))
