"""RuntimeBudgets: the engine follows the ledger's policy_budgets table (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal

import asyncpg
import pytest

from costwarden.config import LedgerConfig
from costwarden.ledger import Store, open_store
from costwarden.policy.config import BudgetRule, PolicyConfig
from costwarden.policy.engine import PolicyEngine
from costwarden.policy.runtime import RuntimeBudgets, runtime_rule
from costwarden.state.memory import MemoryStateBackend

CAP = BudgetRule(name="cap", scope={"team": "ml"}, limit_usd=Decimal("1.5"))


def engine() -> PolicyEngine:
    return PolicyEngine(PolicyConfig(), MemoryStateBackend())


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition``; the bound only guards against a hang, it asserts no timing."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_start_loads_and_refresh_now_applies_changes(ledger_store: Store) -> None:
    await ledger_store.upsert_budget_rule(CAP)
    policy = engine()
    runtime = RuntimeBudgets(ledger_store, policy, interval_s=3600)
    await runtime.start()
    try:
        assert policy.runtime_budgets == (CAP,)
        await ledger_store.delete_budget_rule("cap")
        assert await runtime.refresh_now() == ()
        assert policy.budgets == ()
    finally:
        await runtime.stop()
    assert not runtime.running


async def test_background_refresh_picks_up_another_replicas_write(
    ledger_store: Store, ledger_config: LedgerConfig
) -> None:
    policy = engine()
    runtime = RuntimeBudgets(ledger_store, policy, interval_s=0.02)
    await runtime.start()
    other_replica = await open_store(ledger_config)
    try:
        await other_replica.upsert_budget_rule(CAP)
        await wait_until(lambda: policy.runtime_budgets == (CAP,), "the new rule applied")
    finally:
        await other_replica.close()
        await runtime.stop()


async def test_failing_reads_keep_the_last_good_set(
    ledger_config: LedgerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    store = await open_store(ledger_config)
    await store.upsert_budget_rule(CAP)
    policy = engine()
    runtime = RuntimeBudgets(store, policy, interval_s=0.02)
    await runtime.start()
    try:
        with caplog.at_level(logging.WARNING, logger="costwarden.policy"):
            await store.close()  # every later read fails, as in a database outage
            await wait_until(lambda: "2 in a row" in caplog.text, "two failed refreshes")
        assert policy.runtime_budgets == (CAP,)
        assert runtime.running
    finally:
        await runtime.stop()


async def test_start_fails_when_the_table_cannot_be_read(ledger_config: LedgerConfig) -> None:
    store = await open_store(ledger_config)
    await store.close()
    runtime = RuntimeBudgets(store, engine())
    # The closed SQLite worker / PostgreSQL pool refuse the read.
    with pytest.raises((RuntimeError, asyncpg.InterfaceError)):
        await runtime.start()
    assert not runtime.running


def test_runtime_rule_validation_speaks_to_the_operator() -> None:
    rule = runtime_rule("alice", {"scope": {"user": "alice"}, "limit_usd": "0.10"})
    assert rule.name == "alice" and rule.limit_usd == Decimal("0.10")
    with pytest.raises(ValueError, match=r"invalid budget 'x': limit_usd: Input should be greater"):
        runtime_rule("x", {"limit_usd": "-1"})
    with pytest.raises(ValueError, match="but the path names"):
        runtime_rule("x", {"name": "y", "limit_usd": "1"})
    with pytest.raises(ValueError, match="invalid budget name"):
        runtime_rule("a/b", {"limit_usd": "1"})
