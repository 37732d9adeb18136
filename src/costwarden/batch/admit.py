"""Admission of batch items before they are sent, and what a refusal does to them.

Direct lane: ``admit_item`` per item, just before its HTTP call. Batch API lane:
``admit_group`` for the items of a provider batch, just before it is created — the sum of
their worst cases at the batch price, one reservation per item so that each is settled on
its own as its result comes back.

A refusal never fails an item nor uses up one of its attempts. A budget (or velocity
breaker) refusal hands the item back to the queue and *pauses its job* in this worker
(``JobGate``): the worker claims none of its items until the pause ends — the budget's
``Retry-After`` (only in-flight reservations block: about a second), else
``batch.budget_pause_s`` at most, so that a budget raised at run time or a new period is
noticed soon without hammering a spent budget. The pause is logged once, when
it begins, with one ``rejected`` ledger record (as the gateway records a refused request),
and once more when the job is admitted again.

A rate-limit refusal does not give the item up: it waits, holding its lease, for as long as
the bucket says, and so do the job's other items before they ask, so that a worker with many
items in flight asks again once, not once per item. Only a request that no wait can admit —
larger than a tokens-per-minute limit — fails, as it would through the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from costwarden.batch.controls import Refused
from costwarden.batch.models import ClaimedItem, Job
from costwarden.batch.recording import refusal_record
from costwarden.policy.engine import Admission
from costwarden.pricing import ResolvedPrice
from costwarden.records import UsageRecord

if TYPE_CHECKING:  # the context holds a JobGate
    from costwarden.batch.context import WorkerContext

log = logging.getLogger("costwarden.batch")
_MIN_PAUSE_S = 0.05  # a refusal with no wait at all must still not spin


class HandedBack(Exception):
    """The policy refused the item: it is back in the queue (or failed, see module doc)."""


class JobGate:
    def __init__(self, pause_s: float, clock: Callable[[], float] = time.time) -> None:
        self._pause_s = pause_s
        self._clock = clock
        self._paused: dict[str, float] = {}  # job id -> epoch s its pause ends
        self._episodes: set[str] = set()  # jobs refused since they were last admitted
        self._rate: dict[str, float] = {}  # job id -> epoch s its rate-limited items may ask

    def clock(self) -> float:
        return self._clock()

    def paused_jobs(self) -> list[str]:
        """Jobs whose items this worker must not claim now."""
        now = self._clock()
        for job_id in [j for j, until in self._paused.items() if until <= now]:
            del self._paused[job_id]
        return sorted(self._paused)

    def paused_until(self, job_id: str) -> float | None:
        until = self._paused.get(job_id)
        return until if until is not None and until > self._clock() else None

    def pause(self, job_id: str, refusal: Refused) -> tuple[float, bool]:
        """Pause ``job_id`` after ``refusal``; (until when, whether this began a pause — the
        refusal worth a log line and a ledger record)."""
        wait = self._pause_s if refusal.wait_s is None else min(refusal.wait_s, self._pause_s)
        until = self._clock() + max(wait, _MIN_PAUSE_S)
        self._paused[job_id] = max(until, self._paused.get(job_id, 0.0))
        began = job_id not in self._episodes
        if began:
            self._episodes.add(job_id)
            log.warning(
                "batch job %s paused: %s; its items stay queued (no attempt used) and are "
                "tried again from %s s on",
                job_id,
                refusal.error.message,
                round(until - self._clock(), 1),
            )
        return until, began

    def admitted(self, job_id: str) -> None:
        if job_id in self._episodes:
            self._episodes.discard(job_id)
            log.info("batch job %s admitted again; resuming", job_id)

    def rate_limited(self, job_id: str, wait_s: float) -> None:
        until = self._clock() + max(wait_s, _MIN_PAUSE_S)
        self._rate[job_id] = max(until, self._rate.get(job_id, 0.0))

    async def rate_wait(self, job_id: str) -> None:
        """Sleep until the job's rate-limited items may ask again (at once if they may)."""
        until = self._rate.get(job_id)
        if until is None:
            return
        delay = until - self._clock()
        if delay <= 0:
            self._rate.pop(job_id, None)
            return
        await asyncio.sleep(delay)


async def admit_item(
    ctx: WorkerContext, job: Job, item: ClaimedItem, record: UsageRecord
) -> Admission | None:
    """The item's reservation; None when no control is configured (nothing to reserve).
    Raises ``HandedBack`` once the item is no longer this worker's to send."""
    controls, gate = ctx.controls, ctx.gate
    if not controls.active:
        return None
    while True:
        paused = gate.paused_until(job.job_id)
        if paused is not None:  # another item of the job was just refused: do not ask
            await ctx.queue.items.defer([(item.item_id, item.lease_token)], paused)
            raise HandedBack
        await gate.rate_wait(job.job_id)
        result = await controls.admit(job.api, item.body, record)
        if isinstance(result, Admission):
            gate.admitted(job.job_id)
            return result
        if result.rate and result.wait_s is not None:
            gate.rate_limited(job.job_id, result.wait_s)
            continue
        await hand_back(ctx, job, [item], result)
        raise HandedBack


async def hand_back(
    ctx: WorkerContext, job: Job, items: list[ClaimedItem], refusal: Refused
) -> None:
    """Refused tries: failed when no wait can admit them, else queued again (no attempt
    used) and the job paused."""
    if refusal.rate and refusal.wait_s is None:
        for item in items:
            record = refusal_record(job, item, refusal.error)
            error = (refusal.error.code, refusal.error.message)
            outcome = ctx.outcomes.rejected(item, record, *error)
            await ctx.completer.finish(outcome, record)
        return
    if refusal.rate:
        assert refusal.wait_s is not None
        until = ctx.gate.clock() + refusal.wait_s
    else:
        until, began = ctx.gate.pause(job.job_id, refusal)
        if began and items:
            ctx.ledger.append(refusal_record(job, items[0], refusal.error))
    await ctx.queue.items.defer([(i.item_id, i.lease_token) for i in items], until)


async def admit_group(
    ctx: WorkerContext,
    job: Job,
    items: tuple[ClaimedItem, ...],
    records: dict[str, UsageRecord],
    price: ResolvedPrice | None,
) -> dict[str, Admission | None]:
    """Reserve each item of a provider batch at ``price`` (asked together: one round trip
    per group commit on Redis); the refused ones are handed back. The admitted items'
    reservations by item id (None for each when no control is configured)."""
    if not ctx.controls.active:
        return dict.fromkeys((item.item_id for item in items), None)
    results = await asyncio.gather(
        *(ctx.controls.admit(job.api, i.body, records[i.item_id], price) for i in items)
    )
    admitted: dict[str, Admission | None] = {}
    refused: list[ClaimedItem] = []
    first: Refused | None = None
    for item, result in zip(items, results, strict=True):
        if isinstance(result, Admission):
            admitted[item.item_id] = result
            continue
        refused.append(item)
        first = first or result
    if admitted:
        ctx.gate.admitted(job.job_id)
    if first is not None:
        await hand_back(ctx, job, refused, first)
    return admitted


async def readmit_group(
    ctx: WorkerContext,
    job: Job,
    items: list[ClaimedItem],
    records: dict[str, UsageRecord],
    price: ResolvedPrice | None,
) -> dict[str, Admission | None]:
    """Reserve the items of a provider batch taken over from another worker: it was sent
    already, so a refusal cannot stop it. A refused item is said loudly and reserved without a
    check instead, so its settlement still charges the counters what it cost: the cap may be
    passed by what was in flight, but never forgotten."""
    if not ctx.controls.active:
        return dict.fromkeys((item.item_id for item in items), None)
    results = await asyncio.gather(
        *(ctx.controls.admit(job.api, i.body, records[i.item_id], price) for i in items)
    )
    admitted: dict[str, Admission | None] = {}
    refusals = []
    for item, result in zip(items, results, strict=True):
        if isinstance(result, Admission):
            admitted[item.item_id] = result
            continue
        refusals.append(result)
        admitted[item.item_id] = await ctx.controls.admit_spent(
            job.api, item.body, records[item.item_id], price
        )
    if refusals:
        log.error(
            "batch job %s: a provider batch taken over from another worker is already sent, "
            "but %d of its items could not be reserved again (%s); their cost is charged to "
            "the budgets anyway",
            job.job_id,
            len(refusals),
            refusals[0].error.message,
        )
    return admitted
