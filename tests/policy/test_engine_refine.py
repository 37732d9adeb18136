"""Admission at a cheap upper bound first, with the exact count only when a limit refuses it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from costwarden.errors import BudgetExceeded, RateLimited
from costwarden.policy.config import BudgetRule, RateLimitRule
from costwarden.policy.engine import Admission, AdmissionRequest
from costwarden.policy.events import BudgetEvent, MemoryEventSink
from costwarden.records import Principal, Tags
from costwarden.state.base import usd_to_units_up
from tests.policy.conftest import make

ALICE = Principal(key_id="k-alice", user="alice", team="ml")


class Exact:
    """The exact (tokens, worst case) of a request, counting how often it was asked for."""

    def __init__(self, tokens: int, cost: str) -> None:
        self.answer = (tokens, usd_to_units_up(Decimal(cost)))
        self.calls = 0

    def __call__(self) -> tuple[int, int]:
        self.calls += 1
        return self.answer


def bounded(bound_cost: str, exact: Exact, bound_tokens: int = 400) -> AdmissionRequest:
    return AdmissionRequest(
        principal=ALICE,
        tags=Tags(),
        model="gpt-4o",
        estimated_input_tokens=bound_tokens,
        max_output_tokens=100,
        worst_case_units=usd_to_units_up(Decimal(bound_cost)),
        refine=exact,
    )


def exhausted(sink: MemoryEventSink) -> list[BudgetEvent]:
    return [e for e in sink.events if isinstance(e, BudgetEvent) and e.kind == "exhausted"]


async def test_a_bound_that_fits_is_reserved_without_counting(backend, clock, sink):
    engine = make(backend, clock, sink, budgets=(BudgetRule(limit_usd=Decimal("1")),))
    exact = Exact(100, "0.10")
    admission = await engine.admit(bounded("0.40", exact))
    assert exact.calls == 0
    assert admission.reserved_usd == Decimal("0.40") and admission.reserved_tokens == 500
    key = admission.budgets[0].counter.key
    assert await backend.usage(key) == (Decimal(0), Decimal("0.4"))
    await engine.settle(admission, Decimal("0.08"), 180)
    assert await backend.usage(key) == (Decimal("0.08"), Decimal(0))


async def test_a_refused_bound_is_retried_with_the_exact_count(backend, clock, sink):
    engine = make(backend, clock, sink, budgets=(BudgetRule(limit_usd=Decimal("0.30")),))
    exact = Exact(100, "0.10")
    admission = await engine.admit(bounded("0.40", exact))  # 0.40 > 0.30, but 0.10 fits
    assert exact.calls == 1
    assert admission.reserved_usd == Decimal("0.10") and admission.reserved_tokens == 200
    assert await backend.usage(admission.budgets[0].counter.key) == (Decimal(0), Decimal("0.1"))
    assert exhausted(sink) == []  # the refused bound was only a first try


async def test_the_exact_refusal_names_the_exact_amount_and_is_reported_once(
    backend, clock, sink
):
    engine = make(backend, clock, sink, budgets=(BudgetRule(limit_usd=Decimal("0.05")),))
    for _ in range(2):
        with pytest.raises(BudgetExceeded) as caught:
            await engine.admit(bounded("0.40", Exact(100, "0.10")))
    assert "may cost up to $0.10" in caught.value.message
    assert caught.value.details["request_max_cost_usd"] == "0.1"
    assert len(exhausted(sink)) == 1


async def test_a_retried_bound_does_not_hide_a_later_exhaustion(backend, clock, sink):
    engine = make(backend, clock, sink, budgets=(BudgetRule(limit_usd=Decimal("0.30")),))
    first = await engine.admit(bounded("0.40", Exact(100, "0.10")))  # admitted on the retry
    await engine.settle(first, Decimal("0.25"), 300)
    with pytest.raises(BudgetExceeded):
        await engine.admit(bounded("0.40", Exact(100, "0.10")))
    assert len(exhausted(sink)) == 1  # the real exhaustion is reported


async def test_a_token_bucket_refusing_the_bound_is_retried_exactly(backend, clock, sink):
    engine = make(backend, clock, sink, rate_limits=(RateLimitRule(tpm=300),))
    exact = Exact(100, "0.10")
    admission = await engine.admit(bounded("0.40", exact, bound_tokens=400))  # 500 > 300
    assert exact.calls == 1 and admission.reserved_tokens == 200
    assert admission.headers["x-ratelimit-remaining-tokens"] == "100"
    with pytest.raises(RateLimited):  # 200 more do not fit in the 100 left, exactly either
        await engine.admit(bounded("0.40", Exact(100, "0.10"), bound_tokens=400))


async def test_admit_many_answers_each_request_and_retries_refused_bounds(backend, clock, sink):
    engine = make(backend, clock, sink, budgets=(BudgetRule(limit_usd=Decimal("0.50")),))
    exact = Exact(100, "0.10")
    results = await engine.admit_many(
        [
            bounded("0.30", Exact(100, "0.10")),  # the bound fits
            bounded("0.40", exact),  # 0.30 + 0.40 > 0.50: retried exactly, 0.10 fits
            bounded("0.40", Exact(100, "0.10")),  # refused as well; exactly, the last 0.10 fits
            bounded("0.40", Exact(300, "0.20")),  # nothing left for it, exactly either
        ]
    )
    kinds = [type(r).__name__ for r in results]
    assert kinds == ["Admission", "Admission", "Admission", "BudgetExceeded"]
    reserved = [r.reserved_usd for r in results if isinstance(r, Admission)]
    assert reserved == [Decimal("0.30"), Decimal("0.10"), Decimal("0.10")]
    assert exact.calls == 1
    assert len(exhausted(sink)) == 1
