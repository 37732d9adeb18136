"""Batch workers inside the gateway process (``batch.gateway_workers: N``).

With the embedded default (in-process counters) no other process can see the gateway's
budget and rate counters, so a standalone worker cannot respect them (it refuses to start,
see controls.py). A worker running here uses the gateway's own ``Services`` — its policy
engine and counters, ledger, upstream client and session — so every batch item is admitted
against exactly the counters interactive requests use. On Redis it works as well, and a
deployment may mix it with standalone workers.

Each of the N loops is a ``Worker`` serving every job (gateway intake included) with
``batch.concurrency`` requests in flight. A loop that fails (say, the queue database went
away) is logged and started again after a pause; on shutdown each gets ``batch.notice_s`` to
finish what is in flight before the gateway closes its services.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from costwarden.batch.admit import JobGate
from costwarden.batch.backends import BatchQueue, open_queue
from costwarden.batch.completer import Completer
from costwarden.batch.context import WorkerContext, WorkerOptions
from costwarden.batch.controls import from_services
from costwarden.batch.pricing import BatchPricer
from costwarden.batch.recording import Outcomes
from costwarden.batch.worker import Worker
from costwarden.gateway.services import Services, resolve_api_keys

log = logging.getLogger("costwarden.batch")
_RESTART_S = 5.0  # after a worker loop failed: do not spin on a broken queue database


def context_from_services(
    services: Services, queue: BatchQueue, environ: dict[str, str]
) -> WorkerContext:
    settings = services.settings
    batch = settings.batch
    return WorkerContext(
        settings=settings,
        queue=queue,
        ledger=services.ledger,
        session=services.session,
        caller=services.caller,
        api_keys=resolve_api_keys(settings, environ),
        pricer=BatchPricer(services.prices, batch.batch_api),
        outcomes=Outcomes(batch.backoff_base_s, batch.backoff_max_s),
        completer=Completer(queue.items, services.ledger),
        controls=from_services(services),
        gate=JobGate(batch.budget_pause_s),
    )


class GatewayWorkers:
    def __init__(self, services: Services, environ: dict[str, str] | None = None) -> None:
        self._services = services
        self._environ = dict(os.environ if environ is None else environ)
        self._queue: BatchQueue | None = None
        self._workers: list[Worker] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    @property
    def running(self) -> int:
        return sum(1 for task in self._tasks if not task.done())

    async def start(self) -> None:
        count = self._services.settings.batch.gateway_workers
        if count == 0:
            return
        self._queue = await open_queue(self._services.settings)
        for n in range(count):
            task = asyncio.create_task(self._supervise(), name=f"batch-gateway-worker-{n}")
            self._tasks.append(task)
        log.info("batch: %d worker loop(s) running inside the gateway", count)

    async def _supervise(self) -> None:
        assert self._queue is not None
        config = self._services.settings.batch
        options = WorkerOptions(concurrency=config.concurrency, notice_s=config.notice_s)
        while not self._stopping.is_set():
            ctx = context_from_services(self._services, self._queue, self._environ)
            worker = Worker(ctx, options)
            self._workers.append(worker)
            try:
                await worker.run()
            except Exception:
                log.exception("batch: a worker loop inside the gateway failed; restarting it")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), _RESTART_S)
            finally:
                self._workers.remove(worker)

    async def stop(self) -> None:
        """Let every loop drain (``batch.notice_s``) and store its outcomes, then close."""
        self._stopping.set()
        for worker in self._workers:
            worker.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._queue is not None:
            await self._queue.close()
            self._queue = None
