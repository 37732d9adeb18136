"""Admissions taken together: in process, those of one loop iteration in one callback; on
Redis, those arriving during a round trip in the next one (group commit)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from costwarden.errors import BudgetExceeded
from costwarden.gateway.admission_batch import AdmissionBatcher, InProcessAdmissions
from costwarden.gateway.settlement import SettlementBatcher
from costwarden.policy.config import BudgetRule, PolicyConfig
from costwarden.policy.engine import Admission, AdmissionRequest, PolicyEngine
from costwarden.state.base import StateBackend
from costwarden.state.memory import MemoryStateBackend
from costwarden.state.redis import RedisStateBackend
from tests.support.admissions import admission_request


class RoundTrips(MemoryStateBackend):
    """In-process counters behind a simulated network round trip per call."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    async def admit(self, plan):  # type: ignore[no-untyped-def]
        self.batches.append(1)
        await asyncio.sleep(0.01)
        return await super().admit(plan)

    async def admit_many(self, plans):  # type: ignore[no-untyped-def]
        self.batches.append(len(plans))
        await asyncio.sleep(0.01)
        return await super().admit_many(plans)


def engine_with(state: StateBackend, limit: str) -> PolicyEngine:
    return PolicyEngine(PolicyConfig(budgets=(BudgetRule(limit_usd=Decimal(limit)),)), state)


async def test_admissions_arriving_during_a_round_trip_go_together() -> None:
    state = RoundTrips()
    batcher = AdmissionBatcher(engine_with(state, "1"))
    first = asyncio.create_task(batcher.admit(admission_request("0.30")))
    await asyncio.sleep(0.001)  # the first call is in flight
    rest = [asyncio.create_task(batcher.admit(admission_request("0.30"))) for _ in range(3)]
    results = await asyncio.gather(first, *rest, return_exceptions=True)
    assert state.batches == [1, 3]
    assert [type(r).__name__ for r in results] == ["Admission"] * 3 + ["BudgetExceeded"]
    assert isinstance(results[3], BudgetExceeded)  # in arrival order: the 4th did not fit


async def test_a_cancelled_caller_gets_its_reservation_returned() -> None:
    state = RoundTrips()
    engine = engine_with(state, "1")
    batcher = AdmissionBatcher(engine)
    first = asyncio.create_task(batcher.admit(admission_request("0.20")))
    await asyncio.sleep(0.001)
    # Queued behind the first:
    waiting = asyncio.create_task(batcher.admit(admission_request("0.40")))
    await asyncio.sleep(0.001)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    admitted = await first
    await batcher.flush()  # the queued one is still admitted, then released
    assert state.batches == [1, 1]
    key = admitted.budgets[0].counter.key
    assert await state.usage(key) == (Decimal(0), Decimal("0.2"))  # the 0.40 was returned


async def test_a_failing_backend_fails_the_whole_batch_and_recovers() -> None:
    class Down(MemoryStateBackend):
        down = True

        async def admit(self, plan):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.01)
            return await super().admit(plan)

        async def admit_many(self, plans):  # type: ignore[no-untyped-def]
            if self.down:
                self.down = False
                raise ConnectionError("redis is down")
            return await super().admit_many(plans)

    batcher = AdmissionBatcher(engine_with(Down(), "1"))
    first = asyncio.create_task(batcher.admit(admission_request("0.10")))
    await asyncio.sleep(0.001)
    queued = [asyncio.create_task(batcher.admit(admission_request("0.10"))) for _ in range(2)]
    results = await asyncio.gather(first, *queued, return_exceptions=True)
    kinds = [type(r).__name__ for r in results]
    assert kinds == ["Admission", "ConnectionError", "ConnectionError"]
    assert (await batcher.admit(admission_request("0.10"))).reserved_usd == Decimal("0.10")


# -- in process: the admissions of one event-loop iteration, in one callback ---------------


class Slot:
    admission: Admission | None = None


def in_process(engine: PolicyEngine) -> InProcessAdmissions[AdmissionRequest]:
    return InProcessAdmissions(engine.admit_now)


async def test_in_process_admissions_of_one_iteration_are_taken_together_in_order() -> None:
    state = MemoryStateBackend()
    batch = in_process(engine_with(state, "1"))
    slots = [Slot() for _ in range(4)]
    futures = [batch.admit(admission_request("0.30"), slot) for slot in slots]
    assert not state._leases  # queued, nothing reserved yet
    await asyncio.sleep(0)  # one loop iteration: the batch ran
    assert all(future.done() for future in futures)
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["Admission"] * 3 + ["BudgetExceeded"]
    assert [slot.admission for slot in slots] == [*results[:3], None]
    key = slots[0].admission.budgets[0].counter.key  # type: ignore[union-attr]
    assert await state.usage(key) == (Decimal(0), Decimal("0.9"))


async def test_the_slot_holds_the_admission_before_its_request_wakes_up() -> None:
    batch = in_process(engine_with(MemoryStateBackend(), "1"))
    slot = Slot()
    future = batch.admit(admission_request("0.30"), slot)
    seen: list[Admission | None] = []
    future.add_done_callback(lambda _: seen.append(slot.admission))
    admission = await future
    # A request cancelled between the answer and its wake-up still finds its reservation in
    # the slot, so the pipeline's clean-up returns it.
    assert seen == [admission]


async def test_a_request_cancelled_before_its_batch_reserves_nothing() -> None:
    state = MemoryStateBackend()
    batch = in_process(engine_with(state, "1"))
    gone, kept = Slot(), Slot()
    cancelled = batch.admit(admission_request("0.40"), gone)
    admitted = batch.admit(admission_request("0.20"), kept)
    cancelled.cancel()
    admission = await admitted
    assert gone.admission is None
    assert await state.usage(admission.budgets[0].counter.key) == (Decimal(0), Decimal("0.2"))


async def test_an_error_fails_its_own_request_only() -> None:
    engine = engine_with(MemoryStateBackend(), "1")

    def admit(request: AdmissionRequest) -> Admission:
        if request.estimated_input_tokens == 13:
            raise RuntimeError("a bug in one admission")
        return engine.admit_now(request)

    batch = InProcessAdmissions(admit)
    broken = admission_request("0.10")
    broken.estimated_input_tokens = 13
    futures = [batch.admit(r, Slot()) for r in (admission_request(), broken, admission_request())]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["Admission", "RuntimeError", "Admission"]


class CountedRedis(RedisStateBackend):
    """The Redis backend, each call held 10 ms longer (so calls overlap) and counted."""

    calls: list[tuple[int, int]]  # (settlements, admissions) per call

    async def settle_and_admit(self, settlements, now, plans):  # type: ignore[no-untyped-def]
        self.calls.append((len(settlements), len(plans)))
        await asyncio.sleep(0.01)
        return await super().settle_and_admit(settlements, now, plans)


@pytest.fixture
async def redis_state(redis_url: str, key_prefix: str):  # type: ignore[no-untyped-def]
    state = CountedRedis.from_url(redis_url, key_prefix)
    state.calls = []
    yield state
    await state.aclose()


async def settled_while_in_flight(
    state: CountedRedis, follower: str
) -> tuple[SettlementBatcher, AdmissionBatcher, Admission, asyncio.Task[Admission]]:
    """A cap of 1: an admission of 0.50 done, one of ``follower`` in flight, and the 0.50's
    settlement (at 0.10) queued meanwhile."""
    engine = engine_with(state, "1")
    settlements = SettlementBatcher(engine)
    batcher = AdmissionBatcher(engine, settlements)
    done = await batcher.admit(admission_request("0.50"))
    in_flight = asyncio.create_task(batcher.admit(admission_request(follower)))
    await asyncio.sleep(0.001)  # its call is in flight: what comes now waits for the next
    settlements.settle(done, Decimal("0.10"), 5)
    assert state.calls == [(0, 1), (0, 1)]
    return settlements, batcher, done, in_flight


async def test_settlements_go_along_with_the_next_batch_of_admissions(redis_state) -> None:  # type: ignore[no-untyped-def]
    settlements, batcher, _, first = await settled_while_in_flight(redis_state, "0.40")
    second = asyncio.create_task(batcher.admit(admission_request("0.40")))
    # 0.50 + 0.40 reserved: the second 0.40 fits only because the same call settles the 0.50
    # at 0.10 first.
    admitted = await asyncio.gather(first, second)
    await settlements.flush()
    assert redis_state.calls == [(0, 1), (0, 1), (1, 1)]  # the settlement went along
    key = admitted[1].budgets[0].counter.key
    assert await redis_state.usage(key) == (Decimal("0.1"), Decimal("0.8"))


async def test_settlements_go_on_their_own_when_no_admission_follows(redis_state) -> None:  # type: ignore[no-untyped-def]
    settlements, _, done, first = await settled_while_in_flight(redis_state, "0.20")
    await first
    # No admission comes: it goes alone once that call is answered (and a 5 ms wait).
    for _ in range(200):
        if len(redis_state.calls) == 3:
            break
        await asyncio.sleep(0.01)
    assert redis_state.calls == [(0, 1), (0, 1), (1, 0)]
    await settlements.flush()  # its call answered
    key = done.budgets[0].counter.key
    assert await redis_state.usage(key) == (Decimal("0.1"), Decimal("0.2"))


async def test_an_idle_gateways_next_admission_takes_the_settlements_along(redis_state) -> None:  # type: ignore[no-untyped-def]
    engine = engine_with(redis_state, "1")
    settlements = SettlementBatcher(engine, carry_wait_s=5.0)
    batcher = AdmissionBatcher(engine, settlements)
    done = await batcher.admit(admission_request("0.50"))
    settlements.settle(done, Decimal("0.10"), 5)  # nothing in flight: waits for a carrier
    await asyncio.sleep(0.01)
    assert redis_state.calls == [(0, 1)]
    # 0.50 still reserved: 0.60 fits only because this call settles it at 0.10 first.
    admitted = await batcher.admit(admission_request("0.60"))
    assert redis_state.calls == [(0, 1), (1, 1)]
    await settlements.flush()  # nothing left to send
    assert redis_state.calls == [(0, 1), (1, 1)]
    key = admitted.budgets[0].counter.key
    assert await redis_state.usage(key) == (Decimal("0.1"), Decimal("0.6"))
