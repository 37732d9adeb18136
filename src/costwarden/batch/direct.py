"""The direct lane: items sent one by one with packed concurrency, to any configured endpoint
of the job's model (a self-hosted vLLM/Ollama/TGI server, or a provider's real-time API).

The lane keeps ``concurrency`` requests in flight: it claims items in groups as slots free
up (a claim is one transaction, so not one per item), admits each against the spend controls
(its worst case reserved like a gateway request's, settled with its actual cost after; a
refusal hands it back, see admit.py), runs each through the gateway's upstream caller (same
endpoints, weights, health ejection, keys and per-attempt records), and hands the outcome
to the completer. On stop it claims nothing more, gives the requests in
flight ``notice_s`` to finish, then cancels the rest and releases their items at once.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson

from costwarden.batch.admit import HandedBack, admit_item
from costwarden.batch.context import WorkerContext, WorkerOptions
from costwarden.batch.models import ClaimedItem, Job, Outcome
from costwarden.batch.recording import interrupted, new_record, price_attempt
from costwarden.errors import CostwardenError
from costwarden.gateway.upstream import CallSpec, UpstreamResult
from costwarden.policy.engine import Admission
from costwarden.records import UsageRecord

log = logging.getLogger("costwarden.batch")


class DirectLane:
    def __init__(self, ctx: WorkerContext, options: WorkerOptions) -> None:
        self._ctx = ctx
        self._options = options
        self._tasks: dict[asyncio.Task[None], ClaimedItem] = {}
        self._batch = max(1, options.concurrency // 4)  # claim in groups, not one by one
        self.idle = False  # nothing in flight and nothing to claim at the last look

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            claimed = await self._claim()
            self.idle = not claimed and not self._tasks
            await self._wait(stop, busy=bool(claimed))
        await self._drain()

    async def _claim(self) -> int:
        free = self._options.concurrency - len(self._tasks)
        if free < self._batch and self._tasks:
            return 0
        ctx = self._ctx
        items = await ctx.queue.items.claim(
            ctx.owner,
            free,
            ctx.config.lease_s,
            mode="direct",
            job_id=self._options.job_id,
            skip_jobs=ctx.gate.paused_jobs(),
        )
        for item in items:
            task = asyncio.create_task(self._run_item(item), name=f"batch-{item.item_id}")
            self._tasks[task] = item
            task.add_done_callback(self._forget)
        return len(items)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("batch item task failed", exc_info=task.exception())

    async def _wait(self, stop: asyncio.Event, *, busy: bool) -> None:
        if busy and len(self._tasks) < self._options.concurrency:
            return  # claimed some and slots are left: look again at once
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait(
                {stopper, *self._tasks},
                timeout=self._options.idle_poll_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            stopper.cancel()

    async def _drain(self) -> None:
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=self._options.notice_s)
        if not late:
            return
        items = [self._tasks[task] for task in late if task in self._tasks]
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        released = await self._ctx.queue.items.release(
            self._ctx.owner, [item.item_id for item in items]
        )
        log.warning("batch: notice over; released %d item(s) still in flight", released)

    async def _run_item(self, item: ClaimedItem) -> None:
        ctx = self._ctx
        job = await ctx.job(item.job_id)
        record = new_record(job, item)
        if ctx.settings.model(job.model) is None:
            message = f"model {job.model!r} is not configured on this worker"
            await ctx.completer.finish(
                ctx.outcomes.rejected(item, record, "model_not_found", message), record
            )
            return
        try:
            admission = await self._admit(job, item, record)
        except HandedBack:
            return
        try:
            await self._send(job, item, record)
        finally:
            if admission is not None:  # settled whatever happened, as the gateway does
                if record.attempts:
                    ctx.controls.settle(admission, record)
                else:
                    await ctx.controls.release(admission)

    async def _admit(self, job: Job, item: ClaimedItem, record: UsageRecord) -> Admission | None:
        """The item's reservation (see admit.py); a try stopped while it waited for one
        never reached an upstream, so its item goes back with its attempt unused."""
        try:
            return await admit_item(self._ctx, job, item, record)
        except asyncio.CancelledError:
            until = self._ctx.gate.clock()
            deferral = self._ctx.queue.items.defer([(item.item_id, item.lease_token)], until)
            await asyncio.shield(deferral)
            raise

    async def _send(self, job: Job, item: ClaimedItem, record: UsageRecord) -> None:
        ctx = self._ctx
        t0 = time.perf_counter()
        ctx.ledger.append_pending(record)
        handed_over = False
        try:
            result = await ctx.caller.call(CallSpec(job.api, item.body, False, {}), record, t0)
            outcome = self._outcome(job, item, record, result, t0)
            handed_over = True
            await ctx.completer.finish(outcome, record)
        except CostwardenError as exc:  # no endpoint reachable / timed out: retry later
            outcome = ctx.outcomes.failed(job, item, record, (exc.code, exc.message, None), t0)
            handed_over = True
            await ctx.completer.finish(outcome, record)
        except asyncio.CancelledError:
            if not handed_over:  # the completer records what it was handed
                interrupted(record, t0, "the batch worker stopped before the answer came")
                ctx.ledger.append(record)
            raise

    def _outcome(
        self, job: Job, item: ClaimedItem, record: UsageRecord, result: UpstreamResult, t0: float
    ) -> Outcome:
        body = result.body or b""
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = None
        if result.status >= 400:
            error = ("upstream_error", _error_message(payload, body), result.status)
            return self._ctx.outcomes.failed(job, item, record, error, t0)
        target = result.target
        price = self._ctx.pricer.direct(target.model, target.endpoint, record.created_at)
        price_attempt(result.attempt, job.api, payload, price, target.endpoint.provider)
        return self._ctx.outcomes.done(item, record, t0, result.status, body.decode())


def _error_message(payload: object, body: bytes) -> str:
    """The upstream's own error message when it sent one in the usual shape, else its body."""
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        message = payload["error"].get("message")
        if isinstance(message, str):
            return message
    return body[:500].decode("utf-8", "replace")
