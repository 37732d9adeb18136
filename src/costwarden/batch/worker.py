"""The batch worker: lanes that send items, the lease heartbeat, the ledger catch-up, and a
clean stop on SIGTERM.

    costwarden batch worker [--job ID] [--concurrency N] [--notice-s 30] [--exit-when-idle]

Spot preemption: on SIGTERM (or SIGINT) the worker claims nothing more, lets requests in
flight finish within ``notice_s``, releases what is left (another worker takes it at once),
stores every outcome and exits 0. Killed outright (SIGKILL), it leaves leases that run out
after ``batch.lease_s``; other workers — or this one, restarted — then re-claim those items.

Ledger catch-up: a done item's record is appended to the ledger just after its outcome is
stored; items whose record may have missed the ledger (their worker died in between) have
``recorded = 0`` for longer than ``batch.reconcile_after_s``, and any worker appends them
again from the record stored with the outcome. The ledger keeps one row per request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable

import aiohttp
import orjson

from costwarden.batch.admit import JobGate
from costwarden.batch.backends import BatchQueue, open_queue
from costwarden.batch.batch_api import BatchApiLane
from costwarden.batch.completer import Completer
from costwarden.batch.context import WorkerContext, WorkerOptions
from costwarden.batch.controls import open_controls, require_shared
from costwarden.batch.direct import DirectLane
from costwarden.batch.models import JobStatus
from costwarden.batch.pricing import BatchPricer
from costwarden.batch.recording import Outcomes
from costwarden.config import Settings
from costwarden.gateway.routing import Router
from costwarden.gateway.services import resolve_api_keys
from costwarden.gateway.upstream import UpstreamCaller
from costwarden.ledger import Ledger
from costwarden.pricing import PriceBook
from costwarden.records import record_from_dict

log = logging.getLogger("costwarden.batch")
_BOOKKEEPING_S = 1.0  # how often appended records are marked recorded
_CATCH_UP_LIMIT = 1000


class Worker:
    def __init__(self, ctx: WorkerContext, options: WorkerOptions) -> None:
        self._ctx = ctx
        self._options = options
        self._stop = asyncio.Event()
        self._direct = DirectLane(ctx, options)
        self._batch_api = BatchApiLane(ctx, options)

    def stop(self) -> None:
        """Stop taking work; what is in flight gets ``notice_s`` to finish."""
        self._stop.set()

    async def run(self) -> None:
        ctx = self._ctx
        ctx.completer.start()
        await self.catch_up(time.time() - ctx.config.reconcile_after_s)
        lanes = [
            asyncio.create_task(self._direct.run(self._stop), name="batch-direct"),
            asyncio.create_task(self._batch_api.run(self._stop), name="batch-api"),
        ]
        helpers = [
            asyncio.create_task(self._every(ctx.config.heartbeat_s, self._heartbeat)),
            asyncio.create_task(self._every(_BOOKKEEPING_S, self._bookkeeping)),
            asyncio.create_task(self._every(self._options.idle_poll_s * 5, self._watch)),
        ]
        try:
            await asyncio.gather(*lanes)
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await ctx.completer.close()
        await self.catch_up(time.time())

    async def catch_up(self, finished_before: float) -> int:
        """Append the records of done items that may have missed the ledger; return how many."""
        items = self._ctx.queue.items
        rows = await items.unrecorded(finished_before, _CATCH_UP_LIMIT)
        for _, line in rows:
            self._ctx.ledger.append(record_from_dict(orjson.loads(line)))
        if rows:
            await self._ctx.ledger.flush()
            await items.mark_recorded([item_id for item_id, _ in rows])
        return len(rows)

    async def _every(self, seconds: float, work: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await work()
            except Exception:  # a database blip must not stop the heartbeat for good
                log.exception("batch worker: %s failed; trying again", work.__name__)

    async def _heartbeat(self) -> None:
        await self._ctx.queue.items.heartbeat(self._ctx.owner, self._ctx.config.lease_s)

    async def _bookkeeping(self) -> None:
        await self._ctx.completer.mark_recorded()
        if self._ctx.config.reconcile_after_s > 0:
            await self.catch_up(time.time() - self._ctx.config.reconcile_after_s)

    async def _watch(self) -> None:
        """Stop once the job this worker serves is finished (or, with ``exit_when_idle``,
        once no job has work left anywhere), or once a control appears (a runtime budget)
        that its unshared counters could not enforce."""
        problem = self._ctx.controls.unshared_problem()
        if problem is not None and not self._options.allow_local_counters:
            log.error("batch worker stopping: %s", problem)
            self.stop()
            return
        jobs = self._ctx.queue.jobs
        if self._options.job_id is not None:
            job = await jobs.get(self._options.job_id)
            if job is None or job.status in (JobStatus.DONE, JobStatus.FAILED):
                self.stop()
            return
        idle = self._options.exit_when_idle and self._direct.idle and self._batch_api.idle
        if idle and await jobs.pending_items() == 0:
            self.stop()


async def open_context(
    settings: Settings, queue: BatchQueue, ledger: Ledger, *, allow_local_counters: bool = False
) -> WorkerContext:
    """A standalone worker's context: its own upstream client and spend controls (which
    refuse counters no gateway shares unless ``allow_local_counters``; see controls.py)."""
    gw = settings.gateway
    router, prices = Router(settings), PriceBook(settings)
    controls = await open_controls(settings, ledger, router, prices)
    try:
        require_shared(controls, allow_local_counters)
    except BaseException:
        await controls.close()
        raise
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    api_keys = resolve_api_keys(settings, dict(os.environ))
    caller = UpstreamCaller(
        router,
        session=session,
        retry=gw.retry,
        api_keys=api_keys,
        timeouts=(gw.connect_timeout_s, gw.request_timeout_s),
    )
    batch = settings.batch
    return WorkerContext(
        settings=settings,
        queue=queue,
        ledger=ledger,
        session=session,
        caller=caller,
        api_keys=api_keys,
        pricer=BatchPricer(prices, batch.batch_api),
        outcomes=Outcomes(batch.backoff_base_s, batch.backoff_max_s),
        completer=Completer(queue.items, ledger),
        controls=controls,
        gate=JobGate(batch.budget_pause_s),
    )


async def run_worker(
    settings: Settings,
    options: WorkerOptions,
    on_start: Callable[[Worker], None] | None = None,
) -> int:
    """Run a worker until its job is finished or it is told to stop; the exit status."""
    queue = await open_queue(settings)
    ledger: Ledger | None = None
    ctx: WorkerContext | None = None
    try:
        ledger = await Ledger.open(settings.ledger)
        ctx = await open_context(
            settings, queue, ledger, allow_local_counters=options.allow_local_counters
        )
        worker = Worker(ctx, options)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        if on_start is not None:
            on_start(worker)
        try:
            await worker.run()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        return 0
    finally:
        if ctx is not None:
            await ctx.controls.close()  # settles what is queued, before the ledger closes
            await ctx.session.close()
        if ledger is not None:
            with contextlib.suppress(Exception):
                await ledger.close()
        await queue.close()
