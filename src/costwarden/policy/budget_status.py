"""The effective set of budgets (config + run time) and how much of each is used.

Budgets come from two places: the config file (fixed while the process runs) and the
``policy_budgets`` table, managed at run time through the admin API and the CLI. A runtime rule
whose name equals a config rule's name replaces that rule; deleting the runtime rule brings the
config rule back.

Status is read from the same counters admission reserves on (``StateBackend.usage``), so it shows
exactly what the next admission will check: spent, in-flight reservations, and what remains.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from costwarden.policy.budgets import budget_scopes, current_period
from costwarden.policy.config import EACH, BudgetRule, Period
from costwarden.state.base import StateBackend

BudgetSource = Literal["config", "runtime"]


@dataclass(frozen=True, slots=True)
class EffectiveBudget:
    rule: BudgetRule
    source: BudgetSource


def runtime_rules(rules: Iterable[BudgetRule]) -> tuple[BudgetRule, ...]:
    """Runtime rules, checked (each named, names unique) and ordered by name."""
    by_name: dict[str, BudgetRule] = {}
    for rule in rules:
        if not rule.name:
            raise ValueError("a runtime budget needs a name (it is its id)")
        if rule.name in by_name:
            raise ValueError(f"two runtime budgets are named {rule.name!r}")
        by_name[rule.name] = rule
    return tuple(by_name[name] for name in sorted(by_name))


def effective_budgets(
    config: Sequence[BudgetRule], runtime: Sequence[BudgetRule]
) -> tuple[EffectiveBudget, ...]:
    """Config rules not replaced by a runtime rule of the same name, then the runtime rules."""
    replaced = {rule.name for rule in runtime}
    kept = tuple(EffectiveBudget(r, "config") for r in config if r.name not in replaced)
    return kept + tuple(EffectiveBudget(r, "runtime") for r in runtime)


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """One budget's use for one set of dimension values.

    ``counter`` is None when the rule gives each value of a dimension its own budget
    (``"*"``) and no value for it was given: ``needs`` names those dimensions, and there are
    no numbers to show.
    """

    budget: str  # the rule's label (its name, else scope/period)
    source: BudgetSource
    scope: dict[str, str]  # the rule's scope, "*" included
    period: Period
    limit_usd: Decimal
    counter: str | None = None
    needs: tuple[str, ...] = ()
    window: str | None = None  # "2026-11", "2026-W48", ...
    resets_at: datetime | None = None
    spent_usd: Decimal | None = None
    reserved_usd: Decimal | None = None

    @property
    def remaining_usd(self) -> Decimal | None:
        if self.spent_usd is None or self.reserved_usd is None:
            return None
        return max(Decimal(0), self.limit_usd - self.spent_usd - self.reserved_usd)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; money as exact decimal text, never a float."""
        return {
            "budget": self.budget,
            "source": self.source,
            "scope": dict(self.scope),
            "period": self.period,
            "window": self.window,
            "resets_at": self.resets_at.isoformat() if self.resets_at else None,
            "counter": self.counter,
            "needs": list(self.needs),
            "limit_usd": _money(self.limit_usd),
            "spent_usd": _money(self.spent_usd),
            "reserved_usd": _money(self.reserved_usd),
            "remaining_usd": _money(self.remaining_usd),
        }


def _money(amount: Decimal | None) -> str | None:
    # Fixed-point without trailing zeros: counters hold 8 decimals ("0.05000000" reads "0.05").
    return None if amount is None else format(amount.normalize(), "f")


async def budget_status(
    state: StateBackend,
    budgets: Sequence[EffectiveBudget],
    values: Mapping[str, str],
    now: float,
    tz: ZoneInfo,
) -> list[BudgetStatus]:
    """Status of every budget that concerns ``values`` (e.g. ``{"user": "alice"}``; empty for
    the budgets that need no value). A rule whose scope names another value of a given
    dimension (``team: ml`` when asked about ``team: web``) is left out."""
    found = [_resolve(budget, values, now, tz) for budget in budgets]
    statuses = [status for status in found if status is not None]
    usages = await asyncio.gather(
        *(state.usage(s.counter) for s in statuses if s.counter is not None)
    )
    filled = iter(usages)
    result = []
    for status in statuses:
        if status.counter is None:
            result.append(status)
            continue
        spent, reserved = next(filled)
        result.append(replace(status, spent_usd=spent, reserved_usd=reserved))
    return result


def _resolve(
    budget: EffectiveBudget, values: Mapping[str, str], now: float, tz: ZoneInfo
) -> BudgetStatus | None:
    rule = budget.rule
    dimensions: dict[str, str | None] = {}
    needs = []
    for dimension, wanted in rule.scope.items():
        given = values.get(dimension)
        if given is not None and wanted not in (EACH, given):
            return None  # the rule caps another value of this dimension
        if given is None and wanted == EACH:
            needs.append(dimension)
        dimensions[dimension] = given if given is not None else wanted
    base = BudgetStatus(
        budget=rule.label(),
        source=budget.source,
        scope={str(dimension): value for dimension, value in rule.scope.items()},
        period=rule.period,
        limit_usd=rule.limit_usd,
        needs=tuple(sorted(needs)),
    )
    if needs:
        return base
    # The same function admission uses, so the counter read is the one admission reserves on.
    (scope,) = budget_scopes((rule,), dimensions, now, tz)
    window = current_period(rule.period, now, tz)
    return replace(base, counter=scope.counter.key, window=window.label, resets_at=window.resets_at)
