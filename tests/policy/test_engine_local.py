"""The synchronous admission and settlement the gateway uses on the in-process backend."""

from __future__ import annotations

from decimal import Decimal

import pytest

from costwarden.errors import BudgetExceeded
from costwarden.policy.config import BudgetRule
from costwarden.policy.engine import AdmissionRequest
from costwarden.policy.events import BudgetEvent
from costwarden.state.base import usd_to_units_up
from costwarden.state.memory import MemoryStateBackend
from costwarden.state.redis import RedisStateBackend
from tests.policy.conftest import make
from tests.support.admissions import admission_request


def request(cost: str, refine_to: str | None = None) -> AdmissionRequest:
    """``admission_request``, optionally with an exact count that costs ``refine_to``."""
    admission = admission_request(cost)
    if refine_to is not None:
        exact = (100, usd_to_units_up(Decimal(refine_to)))
        admission.refine = lambda: exact
    return admission


async def test_admit_now_and_settle_many_now_keep_the_budget_like_the_coroutines(clock, sink):
    engine = make(MemoryStateBackend(), clock, sink, budgets=(BudgetRule(limit_usd=Decimal(1)),))
    assert engine.local
    first = engine.admit_now(request("0.60"))
    assert first.reserved_usd == Decimal("0.60")
    with pytest.raises(BudgetExceeded):
        engine.admit_now(request("0.50"))  # 0.60 reserved + 0.50 > $1
    assert engine.settle_many_now([(first, Decimal("0.55"), 500)]) == [True]
    assert engine.settle_many_now([(first, Decimal("0.55"), 500)]) == [False]  # once only
    events = [e for e in sink.events if isinstance(e, BudgetEvent)]
    assert [e.threshold_pct for e in events] == [None, 50]  # the refusal, then 0.55 of $1
    second = await engine.admit(request("0.40"))  # the coroutine sees the same counters
    await engine.settle(second, Decimal("0.40"), 400)
    (status,) = await engine.budget_status()
    assert (status.spent_usd, status.reserved_usd) == (Decimal("0.95"), Decimal(0))


async def test_admit_now_retries_a_refused_bound_with_the_exact_count(clock, sink):
    engine = make(MemoryStateBackend(), clock, sink, budgets=(BudgetRule(limit_usd=Decimal(1)),))
    admission = engine.admit_now(request("2.00", refine_to="0.30"))
    assert admission.reserved_usd == Decimal("0.30")


async def test_a_backend_elsewhere_has_no_synchronous_path(clock, sink, backend):
    engine = make(backend, clock, sink, budgets=(BudgetRule(limit_usd=Decimal(1)),))
    assert engine.local is (not isinstance(backend, RedisStateBackend))
    if engine.local:
        return
    with pytest.raises(TypeError):
        engine.admit_now(request("0.10"))
    with pytest.raises(TypeError):
        engine.settle_many_now([])
