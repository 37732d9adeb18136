"""The same contract for both counter backends: atomic reservations that never pass a cap."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from costwarden.state.base import (
    AdmissionPlan,
    RateBucket,
    Refusal,
    ScopeKey,
    StateBackend,
    usd_to_units_down,
    usd_to_units_up,
)

NOW = 1_795_000_000.0
LEASE = 120.0


def plan(lease: str, amount: str, *scopes: ScopeKey, now: float = NOW, rates=()) -> AdmissionPlan:
    units = usd_to_units_up(Decimal(amount))
    return AdmissionPlan(lease, now, now + LEASE, units, scopes, tuple(rates))


async def test_thousand_concurrent_reservations_never_exceed_the_cap(backend: StateBackend):
    cap = ScopeKey("budget:global:day:x", Decimal("1.00"))
    outcomes = await asyncio.gather(
        *(backend.admit(plan(f"l{i}", "0.013", cap)) for i in range(1000))
    )
    admitted = [o for o in outcomes if o.admitted]
    assert len(admitted) == 76  # floor(1.00 / 0.013)
    spent, reserved = await backend.usage(cap.key)
    assert (spent, reserved) == (Decimal(0), Decimal("0.013") * 76)
    refused = [o for o in outcomes if not o.admitted]
    assert {o.refusal for o in refused} == {Refusal.BUDGET}
    assert sum(o.first_refusal for o in refused) == 1
    assert refused[-1].usage is not None
    assert refused[-1].usage.remaining == Decimal("1.00") - Decimal("0.013") * 76


async def test_amounts_round_so_that_the_cap_check_is_conservative(backend: StateBackend):
    third = Decimal(1) / 3  # 0.3333…: reserved as 0.33333334, so three do not fit in $1
    cap = ScopeKey("budget:global:lifetime:lifetime", Decimal(1))
    results = [await backend.admit(plan(f"l{i}", str(third), cap)) for i in range(3)]
    assert [r.admitted for r in results] == [True, True, False]
    assert usd_to_units_up(third) == 33_333_334
    assert usd_to_units_down(Decimal("0.999999999")) == 99_999_999


async def test_reservation_is_all_or_nothing_across_scopes(backend: StateBackend):
    team = ScopeKey("budget:team=ml:month:2026-11", Decimal("10"))
    user = ScopeKey("budget:user=bob:month:2026-11", Decimal("0.50"))
    ok = await backend.admit(plan("a", "0.40", team, user))
    refused = await backend.admit(plan("b", "0.40", team, user))
    assert ok.admitted and not refused.admitted
    assert refused.refused_key == user.key
    assert refused.usage is not None and refused.usage.remaining == Decimal("0.10")
    assert await backend.usage(team.key) == (Decimal(0), Decimal("0.40"))


async def test_settle_moves_reservation_to_spent_once(backend: StateBackend):
    cap = ScopeKey("budget:global:day:x", Decimal("1"))
    assert (await backend.admit(plan("a", "0.50", cap))).admitted
    first = await backend.settle("a", Decimal("0.12"), None, NOW)
    again = await backend.settle("a", Decimal("0.12"), None, NOW)
    assert first.applied and not again.applied
    assert first.scopes[0].spent_before == 0 and first.scopes[0].spent_after == Decimal("0.12")
    assert first.scopes[0].cap == Decimal(1)
    assert await backend.usage(cap.key) == (Decimal("0.12"), Decimal(0))
    assert not await backend.release("a", NOW)


async def test_settlement_reports_a_counter_once_it_reaches_its_report_mark(backend):
    watched = ScopeKey("budget:team=ml:day:x", Decimal("1"), report_pct=50)
    quiet = ScopeKey("session:k:s:spend", Decimal("1"), report_pct=None)
    for lease in ("a", "b"):
        assert (await backend.admit(plan(lease, "0.30", watched, quiet))).admitted
    below = await backend.settle("a", Decimal("0.30"), None, NOW)  # 30 % of the cap
    above = await backend.settle("b", Decimal("0.30"), None, NOW)  # 60 %: past the mark
    # A backend may leave counters below their mark out (memory does; Redis reports all).
    assert {s.key for s in below.scopes} <= {watched.key, quiet.key}
    reported = {s.key: s for s in above.scopes}
    assert watched.key in reported
    assert (reported[watched.key].spent_before, reported[watched.key].spent_after) == (
        Decimal("0.30"),
        Decimal("0.60"),
    )
    assert watched.report_from_units == usd_to_units_up(Decimal("0.50"))
    assert quiet.report_from_units > usd_to_units_up(Decimal("1"))


async def test_settle_without_a_price_keeps_the_reserved_amount(backend: StateBackend):
    cap = ScopeKey("budget:global:day:x", Decimal("1"))
    await backend.admit(plan("a", "0.30", cap))
    await backend.settle("a", None, None, NOW)
    assert await backend.usage(cap.key) == (Decimal("0.30"), Decimal(0))


async def test_release_returns_the_reservation(backend: StateBackend):
    cap = ScopeKey("budget:global:day:x", Decimal("1"))
    await backend.admit(plan("a", "0.80", cap))
    assert not (await backend.admit(plan("b", "0.80", cap))).admitted
    assert await backend.release("a", NOW)
    assert not await backend.release("a", NOW)
    assert (await backend.admit(plan("c", "0.80", cap))).admitted
    assert not (await backend.settle("unknown", Decimal(1), None, NOW)).applied


async def test_expired_lease_of_a_dead_replica_is_swept_by_the_next_admission(
    backend: StateBackend,
):
    cap = ScopeKey("budget:global:day:x", Decimal("1"))
    await backend.admit(plan("dead", "0.90", cap))  # its replica never settles
    assert not (await backend.admit(plan("b", "0.90", cap, now=NOW + 60))).admitted
    later = NOW + LEASE + 1
    assert (await backend.admit(plan("c", "0.90", cap, now=later))).admitted
    assert await backend.usage(cap.key) == (Decimal(0), Decimal("0.90"))


async def test_settle_after_expiry_still_records_the_spend(backend: StateBackend):
    cap = ScopeKey("budget:global:day:x", Decimal("1"))
    await backend.admit(plan("slow", "0.50", cap))
    assert await backend.sweep_expired(NOW + LEASE + 1) == 1
    assert await backend.usage(cap.key) == (Decimal(0), Decimal(0))
    late = await backend.settle("slow", Decimal("0.20"), None, NOW + LEASE + 2)
    assert late.applied
    assert await backend.usage(cap.key) == (Decimal("0.20"), Decimal(0))


async def test_renewed_lease_is_not_swept(backend: StateBackend):
    cap = ScopeKey("budget:global:day:x", Decimal("1"))
    await backend.admit(plan("stream", "0.50", cap))
    assert await backend.renew("stream", NOW + 2 * LEASE, NOW + 60)
    assert await backend.sweep_expired(NOW + LEASE + 1) == 0
    assert await backend.usage(cap.key) == (Decimal(0), Decimal("0.50"))
    assert await backend.sweep_expired(NOW + 2 * LEASE + 1) == 1
    assert not await backend.renew("stream", NOW + 3 * LEASE, NOW + 2 * LEASE + 2)


async def test_reserve_is_the_budget_only_admission(backend: StateBackend):
    cap = ScopeKey("budget:global:day:x", Decimal("1"))
    ok = await backend.reserve((cap,), Decimal("0.7"), "a", NOW + LEASE, NOW)
    refused = await backend.reserve((cap,), Decimal("0.7"), "b", NOW + LEASE, NOW)
    assert ok.admitted and refused.refusal is Refusal.BUDGET


async def test_requests_per_minute_admit_exactly_the_limit(backend: StateBackend):
    rpm = RateBucket("rate:key=k:rpm", "requests", 7, 1)
    results = [await backend.admit(plan(f"l{i}", "0", rates=[rpm])) for i in range(10)]
    assert sum(r.admitted for r in results) == 7
    assert [r.rates[0].remaining for r in results[:7]] == [6, 5, 4, 3, 2, 1, 0]
    refused = results[7]
    assert refused.refusal is Refusal.RATE and refused.retry_after_s is not None
    assert 0 < refused.retry_after_s <= 60 / 7
    # One emission interval later exactly one more request fits.
    later_now = NOW + 60 / 7
    later = [await backend.admit(plan(f"m{i}", "0", now=later_now, rates=[rpm])) for i in range(2)]
    assert [r.admitted for r in later] == [True, False]


async def test_tokens_are_reserved_from_the_estimate_and_corrected_at_settlement(
    backend: StateBackend,
):
    def tpm(cost: int) -> RateBucket:
        return RateBucket("rate:key=k:tpm", "tokens", 1000, cost)

    assert (await backend.admit(plan("a", "0", rates=[tpm(600)]))).admitted
    assert not (await backend.admit(plan("b", "0", rates=[tpm(600)]))).admitted
    await backend.settle("a", Decimal(0), 100, NOW)  # used 100 of the 600 estimated
    second = await backend.admit(plan("c", "0", rates=[tpm(600)]))
    assert second.admitted and second.rates[0].remaining == 300
    await backend.release("c", NOW)  # never sent: all 600 come back
    third = await backend.admit(plan("d", "0", rates=[tpm(900)]))
    assert third.admitted and third.rates[0].remaining == 0


async def test_a_request_larger_than_the_limit_is_never_retryable(backend: StateBackend):
    tpm = RateBucket("rate:key=k:tpm", "tokens", 1000, 1001)
    refused = await backend.admit(plan("a", "0", rates=[tpm]))
    assert refused.refusal is Refusal.RATE and refused.retry_after_s is None


async def test_refused_rate_limit_reserves_no_budget(backend: StateBackend):
    cap = ScopeKey("budget:global:day:x", Decimal("1"))
    rpm = RateBucket("rate:key=k:rpm", "requests", 1, 1)
    assert (await backend.admit(plan("a", "0.1", cap, rates=[rpm]))).admitted
    assert not (await backend.admit(plan("b", "0.1", cap, rates=[rpm]))).admitted
    assert await backend.usage(cap.key) == (Decimal(0), Decimal("0.1"))


async def test_period_keys_are_independent_counters(backend: StateBackend):
    november = ScopeKey("budget:global:month:2026-11", Decimal("1"))
    december = ScopeKey("budget:global:month:2026-12", Decimal("1"))
    assert (await backend.admit(plan("a", "1", november))).admitted
    assert not (await backend.admit(plan("b", "1", november))).admitted
    assert (await backend.admit(plan("c", "1", december))).admitted


async def test_leases_admitted_out_of_expiry_order_each_expire_on_time(backend: StateBackend):
    cap = ScopeKey("budget:global:day:x", Decimal("1"))
    await backend.admit(plan("late", "0.30", cap))  # expires NOW + LEASE
    await backend.admit(plan("early", "0.20", cap, now=NOW - 60))  # clock behind: expires first
    assert await backend.sweep_expired(NOW + LEASE - 59) == 1
    assert await backend.usage(cap.key) == (Decimal(0), Decimal("0.30"))
    assert await backend.sweep_expired(NOW + LEASE + 1) == 1
    assert await backend.usage(cap.key) == (Decimal(0), Decimal(0))


async def test_settle_many_settles_each_in_order_in_one_step(backend: StateBackend):
    team = ScopeKey("budget:team=ml:day:x", Decimal("1"))
    user = ScopeKey("budget:user=ann:day:x", Decimal("1"))
    tpm = RateBucket("rate:key=k:tpm", "tokens", 1000, 400)
    assert (await backend.admit(plan("a", "0.30", team, user, rates=[tpm]))).admitted
    assert (await backend.admit(plan("b", "0.20", team, rates=[tpm]))).admitted
    outcomes = await backend.settle_many(
        [("a", Decimal("0.10"), 100), ("gone", Decimal(1), None), ("b", None, 50), ("a", None, 0)],
        NOW,
    )
    assert [o.applied for o in outcomes] == [True, False, True, False]  # "a" only once
    assert [(s.key, s.spent_before, s.spent_after) for s in outcomes[0].scopes] == [
        (team.key, 0, Decimal("0.1")),
        (user.key, 0, Decimal("0.1")),
    ]
    assert [(s.spent_before, s.spent_after) for s in outcomes[2].scopes] == [
        (Decimal("0.1"), Decimal("0.3"))  # unknown price: the reserved 0.20 is spent
    ]
    assert await backend.usage(team.key) == (Decimal("0.3"), Decimal(0))
    assert await backend.usage(user.key) == (Decimal("0.1"), Decimal(0))
    # Both token reservations (2 × 400) were corrected to what was used (100 + 50).
    after = await backend.admit(plan("c", "0", rates=[RateBucket(tpm.key, "tokens", 1000, 1)]))
    assert after.rates[0].remaining == 1000 - 150 - 1
    assert await backend.settle_many([], NOW) == []


async def test_admit_many_admits_each_in_order_all_or_nothing(backend: StateBackend):
    cap = ScopeKey("budget:global:day:x", Decimal("1"))
    other = ScopeKey("budget:team=ml:day:x", Decimal("0.5"))
    rpm = RateBucket("rate:key=k:rpm", "requests", 3, 1)
    outcomes = await backend.admit_many(
        [
            plan("a", "0.40", cap, rates=[rpm]),
            plan("b", "0.40", cap, other, rates=[rpm]),
            plan("c", "0.40", cap, rates=[rpm]),  # 1.20 > 1: refused, nothing reserved
            plan("d", "0.20", cap, rates=[rpm]),  # fits the budget; the 3rd request this minute
            plan("e", "0.01", other, rates=[rpm]),  # a 4th request: the rpm bucket refuses
        ]
    )
    assert [o.admitted for o in outcomes] == [True, True, False, True, False]
    assert outcomes[2].refusal is Refusal.BUDGET and outcomes[2].refused_key == cap.key
    assert outcomes[4].refusal is Refusal.RATE
    assert await backend.usage(cap.key) == (Decimal(0), Decimal("1.0"))
    assert await backend.usage(other.key) == (Decimal(0), Decimal("0.4"))
    assert [o.applied for o in await backend.settle_many([("a", None, None)], NOW)] == [True]
    assert await backend.admit_many([]) == []
