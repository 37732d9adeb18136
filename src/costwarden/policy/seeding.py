"""Budget counters as the ledger knows them: what the counters are re-seeded with when Redis
lost its data (``state.redis_recovery``).

For every budget in force (config and run time), the spend of its current period is summed from
the ledger per value of the dimensions its scope names, and named with the same function
admission uses (``budgets.compile_budgets``), so each seeded key is exactly the counter the
next admission checks. Only known costs count: an ``in_flight`` row has none yet (its
reservation is restored by the replica that holds it, and its settlement adds the cost), an
``interrupted`` one never will.

What is not seeded: session spend caps and rate buckets (short-lived, keyed by session and
minute) and the velocity breaker start again empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

from costwarden.ledger.store import Store
from costwarden.policy.budgets import PeriodCache, compile_budgets
from costwarden.policy.config import EACH, BudgetRule
from costwarden.policy.engine import PolicyEngine
from costwarden.state.base import SeedCounter, usd_to_units_up


class LedgerSeed:
    """``SeedSource`` over a ledger store and the engine's budgets in force."""

    def __init__(self, store: Store, engine: PolicyEngine) -> None:
        self._store = store
        self._engine = engine
        self._tz = ZoneInfo(engine.config.timezone)

    async def __call__(self, now: float) -> list[SeedCounter]:
        periods = PeriodCache(self._tz)
        seeded: dict[str, SeedCounter] = {}
        for budget in self._engine.budgets:
            for counter in await self._rule_counters(budget.rule, now, periods):
                known = seeded.get(counter.key)
                if known is None or counter.spent_units > known.spent_units:
                    seeded[counter.key] = counter
        return list(seeded.values())

    async def _rule_counters(
        self, rule: BudgetRule, now: float, periods: PeriodCache
    ) -> Sequence[SeedCounter]:
        window = periods.window(rule.period, now)
        group_by = sorted(rule.scope)
        fixed: dict[str, str] = {dim: value for dim, value in rule.scope.items() if value != EACH}
        rows = await self._store.spend(group_by, window.starts_at, None, fixed)
        counters = []
        for row in rows:
            if not row.cost:
                continue  # nothing spent: the counter starts at 0 anyway
            dimensions: dict[str, str | None] = {dim: row.group[dim] for dim in group_by}
            for scope in compile_budgets((rule,), dimensions, now, periods).scopes:
                key = scope.counter
                counters.append(SeedCounter(key.key, usd_to_units_up(row.cost), key.expires_at))
        return counters
