"""Budgets managed at run time: kept in the ledger database, applied by every replica.

    runtime = RuntimeBudgets(ledger.store, engine, interval_s=settings.policy.budget_refresh_s)
    await runtime.start()        # first load; raises if the table cannot be read
    ...
    await store.upsert_budget_rule(rule); await runtime.refresh_now()   # this replica: at once
    ...
    await runtime.stop()

The database is the single source of truth: the admin API and the CLI write to it, and each
replica re-reads it every ``interval_s`` (other replicas therefore apply a change within that
interval). Polling a table of a few rows is cheaper and simpler than a notification channel,
and works the same on SQLite and PostgreSQL.

A failing read is logged and the last good set stays in force: a database hiccup must not
silently lift budgets. The first load, at start-up, does raise, so that a gateway never starts
without the budgets it was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from costwarden.ledger.store import Store
from costwarden.policy.config import BudgetRule
from costwarden.policy.engine import PolicyEngine

log = logging.getLogger("costwarden.policy")

# Names travel in URL paths and CLI arguments: keep them to characters that need no escaping.
_BUDGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,99}")


def check_budget_name(name: str) -> str:
    if not _BUDGET_NAME.fullmatch(name):
        raise ValueError(
            f"invalid budget name {name!r}: use 1-100 letters, digits and . _ : @ - "
            "(starting with a letter or digit)"
        )
    return name


def runtime_rule(name: str, fields: Mapping[str, Any]) -> BudgetRule:
    """A runtime rule from its name and its other fields (as JSON or the CLI gives them).
    Raises ``ValueError`` with one line saying what is wrong, for an API or CLI user."""
    check_budget_name(name)
    given = fields.get("name")
    if given is not None and given != name:
        raise ValueError(f"the body names budget {given!r} but the path names {name!r}")
    try:
        return BudgetRule.model_validate({**fields, "name": name})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'rule'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ValueError(f"invalid budget {name!r}: {problems}") from None


class RuntimeBudgets:
    """Keeps ``engine``'s runtime budgets equal to those in ``store`` (see module docstring)."""

    def __init__(self, store: Store, engine: PolicyEngine, interval_s: float = 2.0) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self._store = store
        self._engine = engine
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        # One read-and-apply at a time: otherwise a slow read that began before a write could
        # be applied after the read that saw the write, and bring the old set back.
        self._lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("RuntimeBudgets already started")
        await self.refresh_now()
        self._task = asyncio.create_task(self._refresh_forever(), name="cw-runtime-budgets")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def refresh_now(self) -> tuple[BudgetRule, ...]:
        """Read the stored rules and apply them; returns the runtime rules now in force."""
        async with self._lock:
            rules = await self._store.list_budget_rules()
            if tuple(rules) != self._engine.runtime_budgets:
                self._engine.set_runtime_budgets(rules)
                log.info("runtime budgets now in force: %s", [r.name for r in rules])
            return self._engine.runtime_budgets

    async def _refresh_forever(self) -> None:
        failures = 0
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.refresh_now()
            except Exception:
                # Keep the last good set (see module docstring) and try again next interval;
                # the traceback once per outage, not every interval.
                failures += 1
                log.warning(
                    "could not refresh runtime budgets (%d in a row); keeping the last good set",
                    failures,
                    exc_info=failures == 1,
                )
                continue
            if failures:
                log.info("runtime budgets refreshed again after %d failed reads", failures)
                failures = 0
