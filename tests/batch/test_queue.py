"""Queue semantics on SQLite and PostgreSQL: leases, exactly-once outcomes, retries, budgets."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from costwarden.batch.backends import BatchQueue
from costwarden.batch.models import ItemStatus, JobSpec, JobStatus, NewItem, Outcome
from costwarden.records import Principal
from tests.batch.conftest import MODEL, Clock, chat_body

LEASE_S = 30.0


async def new_job(queue: BatchQueue, items: int, **spec: object) -> str:
    fields: dict[str, object] = {
        "model": MODEL,
        "api": "chat.completions",
        "mode": "direct",
        "failure_budget": 0.0,
        "max_attempts": 3,
        "principal": Principal("key-1", "alice", "research"),
        **spec,
    }
    job = await queue.jobs.create(JobSpec(**fields))  # type: ignore[arg-type]
    added = await queue.jobs.add_items(
        job.job_id, [NewItem(f"req-{n}", chat_body(f"item {n}")) for n in range(items)]
    )
    assert len(added) == items
    return job.job_id


def done(item_id: str, token: str, cost: str = "0.001") -> Outcome:
    return Outcome(
        item_id,
        token,
        ItemStatus.DONE,
        f"cwb-{item_id}",
        http_status=200,
        result="{}",
        cost=Decimal(cost),
        record="{}",
    )


async def test_claim_leases_items_in_order_once(queue: BatchQueue) -> None:
    job_id = await new_job(queue, 5)
    first = await queue.items.claim("w1", 3, LEASE_S, mode="direct")
    second = await queue.items.claim("w2", 10, LEASE_S, mode="direct")
    assert [i.custom_id for i in first] == ["req-0", "req-1", "req-2"]
    assert [i.custom_id for i in second] == ["req-3", "req-4"]
    assert all(i.attempt == 1 for i in first + second)
    assert await queue.items.claim("w3", 10, LEASE_S, mode="direct") == []
    assert await queue.items.claim("w3", 10, LEASE_S, mode="batch_api") == []
    counts = await queue.jobs.counts(job_id)
    assert (counts.total, counts.leased, counts.queued) == (5, 5, 0)


async def test_expired_lease_is_reclaimed_as_a_new_attempt(queue: BatchQueue, clock: Clock) -> None:
    await new_job(queue, 1)
    [held] = await queue.items.claim("w1", 1, LEASE_S, mode="direct")
    clock.advance(LEASE_S - 1)
    assert await queue.items.claim("w2", 1, LEASE_S, mode="direct") == []
    clock.advance(2)  # w1 died: its lease ran out
    [taken] = await queue.items.claim("w2", 1, LEASE_S, mode="direct")
    assert taken.item_id == held.item_id
    assert taken.attempt == 2
    assert taken.request_id != held.request_id  # each try its own ledger record


async def test_heartbeat_keeps_a_lease(queue: BatchQueue, clock: Clock) -> None:
    await new_job(queue, 1)
    await queue.items.claim("w1", 1, LEASE_S, mode="direct")
    for _ in range(3):
        clock.advance(LEASE_S - 1)
        assert await queue.items.heartbeat("w1", LEASE_S) == 1
    assert await queue.items.claim("w2", 1, LEASE_S, mode="direct") == []


async def test_late_outcome_of_a_lost_lease_changes_nothing(
    queue: BatchQueue, clock: Clock
) -> None:
    job_id = await new_job(queue, 1)
    [slow] = await queue.items.claim("w1", 1, LEASE_S, mode="direct")
    clock.advance(LEASE_S + 1)
    [fast] = await queue.items.claim("w2", 1, LEASE_S, mode="direct")
    # w1 wakes up after its lease ran out: its heartbeat and outcome apply to nothing.
    assert await queue.items.heartbeat("w1", LEASE_S) == 0
    assert await queue.items.finish([done(slow.item_id, slow.lease_token, "9")]) == set()
    assert await queue.items.finish([done(fast.item_id, fast.lease_token, "1")]) == {fast.item_id}
    # ... and a replay of the winner's outcome is not applied twice.
    assert await queue.items.finish([done(fast.item_id, fast.lease_token, "1")]) == set()
    counts = await queue.jobs.counts(job_id)
    assert (counts.done, counts.cost) == (1, Decimal(1))
    assert (await queue.jobs.get(job_id)).status == JobStatus.DONE  # type: ignore[union-attr]


async def test_racing_finishers_complete_an_item_once(queue: BatchQueue, clock: Clock) -> None:
    job_id = await new_job(queue, 20)
    first = await queue.items.claim("w1", 20, LEASE_S, mode="direct")
    clock.advance(LEASE_S + 1)
    second = await queue.items.claim("w2", 20, LEASE_S, mode="direct")
    results = await asyncio.gather(
        *(queue.items.finish([done(i.item_id, i.lease_token)]) for i in first + second)
    )
    applied = [item_id for result in results for item_id in result]
    assert sorted(applied) == sorted(i.item_id for i in second)
    assert (await queue.jobs.counts(job_id)).done == 20


async def test_concurrent_claims_are_disjoint(queue: BatchQueue) -> None:
    job_id = await new_job(queue, 200)
    batches = await asyncio.gather(
        *(queue.items.claim(f"w{n}", 13, LEASE_S, mode="direct", job_id=job_id) for n in range(8))
    )
    ids = [item.item_id for batch in batches for item in batch]
    assert len(ids) == len(set(ids)) == 8 * 13


async def test_retry_waits_for_its_time(queue: BatchQueue, clock: Clock) -> None:
    await new_job(queue, 1)
    [item] = await queue.items.claim("w1", 1, LEASE_S, mode="direct")
    retry = Outcome(
        item.item_id,
        item.lease_token,
        ItemStatus.QUEUED,
        item.request_id,
        http_status=503,
        error='{"code": "upstream_error", "message": "overloaded"}',
        retry_at=clock.now + 10,
    )
    assert await queue.items.finish([retry]) == {item.item_id}
    assert await queue.items.claim("w1", 1, LEASE_S, mode="direct") == []
    clock.advance(11)
    [again] = await queue.items.claim("w1", 1, LEASE_S, mode="direct")
    assert again.attempt == 2


async def test_attempts_run_out_when_leases_keep_expiring(queue: BatchQueue, clock: Clock) -> None:
    job_id = await new_job(queue, 1, max_attempts=2, failure_budget=1.0)
    for _ in range(2):
        assert len(await queue.items.claim("w", 1, LEASE_S, mode="direct")) == 1
        clock.advance(LEASE_S + 1)
    assert await queue.items.claim("w", 1, LEASE_S, mode="direct") == []
    [view] = await queue.jobs.items(job_id)
    assert view.status == ItemStatus.FAILED
    assert view.error is not None and "attempts_exhausted" in view.error
    assert (await queue.jobs.get(job_id)).status == JobStatus.DONE  # type: ignore[union-attr]


async def test_failure_budget_stops_a_job_that_can_no_longer_succeed(queue: BatchQueue) -> None:
    job_id = await new_job(queue, 100, failure_budget=0.02)  # two failures allowed
    items = await queue.items.claim("w", 10, LEASE_S, mode="direct")
    failed = [
        Outcome(i.item_id, i.lease_token, ItemStatus.FAILED, i.request_id, http_status=400)
        for i in items[:3]
    ]
    await queue.items.finish(failed[:2])
    assert (await queue.jobs.get(job_id)).status == JobStatus.RUNNING  # type: ignore[union-attr]
    await queue.items.finish(failed[2:])
    job = await queue.jobs.get(job_id)
    assert job is not None and job.status == JobStatus.FAILED
    assert job.note is not None and "over the failure budget of 2" in job.note
    counts = await queue.jobs.counts(job_id)
    assert (counts.failed, counts.leased, counts.cancelled) == (3, 7, 90)
    # Items already in flight may still finish; nothing queued is sent any more.
    assert await queue.items.claim("w", 10, LEASE_S, mode="direct") == []
    assert await queue.items.finish([done(items[3].item_id, items[3].lease_token)])


async def test_failures_within_budget_finish_the_job_done(queue: BatchQueue) -> None:
    job_id = await new_job(queue, 50, failure_budget=0.02)
    items = await queue.items.claim("w", 50, LEASE_S, mode="direct")
    outcomes = [done(i.item_id, i.lease_token) for i in items[1:]]
    outcomes.append(
        Outcome(items[0].item_id, items[0].lease_token, ItemStatus.FAILED, "x", http_status=400)
    )
    await queue.items.finish(outcomes)
    job = await queue.jobs.get(job_id)
    assert job is not None and job.status == JobStatus.DONE
    counts = await queue.jobs.counts(job_id)
    assert (counts.done, counts.failed, counts.cost) == (49, 1, Decimal("0.049"))


async def test_release_hands_items_back_at_once(queue: BatchQueue) -> None:
    await new_job(queue, 3)
    items = await queue.items.claim("w1", 3, LEASE_S, mode="direct")
    assert await queue.items.release("w2", [i.item_id for i in items]) == 0  # not w2's
    assert await queue.items.release("w1", [i.item_id for i in items[:2]]) == 2
    again = await queue.items.claim("w2", 3, LEASE_S, mode="direct")
    assert sorted(i.item_id for i in again) == sorted(i.item_id for i in items[:2])


async def test_resubmitting_the_same_custom_ids_adds_nothing(queue: BatchQueue) -> None:
    job_id = await new_job(queue, 3)
    again = await queue.jobs.add_items(
        job_id, [NewItem("req-1", chat_body()), NewItem("req-new", chat_body())]
    )
    assert len(again) == 1
    views = await queue.jobs.items(job_id)
    assert [v.custom_id for v in views] == ["req-0", "req-1", "req-2", "req-new"]


async def test_unrecorded_lists_done_items_until_marked(queue: BatchQueue, clock: Clock) -> None:
    await new_job(queue, 2)
    items = await queue.items.claim("w", 2, LEASE_S, mode="direct")
    await queue.items.finish([done(i.item_id, i.lease_token) for i in items])
    assert await queue.items.unrecorded(clock.now, 10) == []  # finished_at is not before now
    clock.advance(1)
    rows = await queue.items.unrecorded(clock.now, 10)
    assert sorted(r[0] for r in rows) == sorted(i.item_id for i in items)
    await queue.items.mark_recorded([items[0].item_id])
    assert [r[0] for r in await queue.items.unrecorded(clock.now, 10)] == [items[1].item_id]


async def test_gateway_intake_reuses_the_open_job(queue: BatchQueue) -> None:
    spec = JobSpec(
        MODEL,
        "chat.completions",
        "direct",
        0.01,
        3,
        source="gateway",
        principal=Principal("key-1", "alice"),
    )
    first = await queue.jobs.intake(spec)
    second = await queue.jobs.intake(spec)
    other = await queue.jobs.intake(
        JobSpec(
            MODEL,
            "chat.completions",
            "direct",
            0.01,
            3,
            source="gateway",
            principal=Principal("key-2", "bob"),
        )
    )
    assert first.job_id == second.job_id != other.job_id
    assert first.status == JobStatus.OPEN


async def test_submissions_claim_and_resume(queue: BatchQueue, clock: Clock) -> None:
    job_id = await new_job(queue, 7, mode="batch_api")
    assert await queue.items.claim("w", 10, LEASE_S, mode="direct") == []
    sub = await queue.submissions.claim("w1", 5, LEASE_S)
    assert sub is not None and len(sub.items) == 5 and not sub.resumed
    rest = await queue.submissions.claim("w2", 5, LEASE_S)
    assert rest is not None and len(rest.items) == 2
    assert await queue.submissions.claim("w3", 5, LEASE_S) is None
    assert await queue.submissions.submitted(sub, "batch_abc")
    clock.advance(LEASE_S + 1)  # w1 died while polling
    await queue.items.heartbeat("w2", LEASE_S)
    resumed = await queue.submissions.claim("w3", 5, LEASE_S, job_id)
    assert resumed is not None and resumed.resumed
    assert resumed.submission_id == sub.submission_id
    assert resumed.provider_batch_id == "batch_abc"
    assert {i.item_id for i in resumed.items} == {i.item_id for i in sub.items}
    # The dead worker's token no longer settles anything; the new holder's does.
    assert not await queue.submissions.submitted(sub, "batch_other")
    stale = await queue.items.finish([done(i.item_id, i.lease_token) for i in sub.items])
    assert stale == set()
    fresh = await queue.items.finish([done(i.item_id, i.lease_token) for i in resumed.items])
    assert len(fresh) == 5
