"""Admissions taken together: in process, those of one event-loop iteration; on Redis, those
arriving during a round trip.

**In process** (``InProcessAdmissions``): a request that arrives while others are in flight
does not run its admission where it stands but queues it; one callback per event-loop
iteration (``call_soon``) then admits everything queued, back to back, and wakes each request
with its answer. Nothing waits in there, so this is about the CPU caches, not round trips: in
the live gateway, between one request's admission and the next the rest of the pipeline (HTTP
parsing, JSON, the upstream client, the ledger) evicts the admission code and its data. Timed
in the gateway at 32 connections, an admission taken alone cost ~48 µs of CPU (~17 µs in a
warm loop); in the iteration's batch (~8 requests) ~24 µs median. Side by side with admissions
taken one by one (``bench/compare_trees.py``, docs/benchmarks.md) the gateway's main thread
spent a median ~45 µs less per request. A request alone (the caller tells: ``Admitter``) is
admitted at once instead, sparing it a future and a loop iteration. The batch is a plain
callback running synchronous code: admissions stay atomic and in arrival order.

**Over the network** (``AdmissionBatcher``, group commit): one admission is one script call;
on Redis its round trip and redis-py's work cost far more than the script. So while one call
is in flight, admissions that arrive queue up and go together in the next call
(``PolicyEngine.admit_many``: one script, each request admitted or refused on its own, in
arrival order). An idle gateway sends each admission at once, from the request's own task;
under load one round trip serves many requests.

Either way, a request whose caller went away while it was queued (its task cancelled) never
holds a reservation for long: in process it is not admitted at all; on Redis the batch still
answers it and a reservation it got is returned at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from costwarden.errors import PolicyRejection
from costwarden.gateway.batching import BatchQueue
from costwarden.gateway.settlement import SettlementBatcher
from costwarden.policy.engine import Admission, AdmissionRequest, PolicyEngine

log = logging.getLogger("costwarden.gateway")

_Queued = tuple[AdmissionRequest, "asyncio.Future[Admission]"]
Ask = TypeVar("Ask")


class AdmissionSlot(Protocol):
    """Where a request keeps its admission, for whoever cleans up after it (settle or
    release). Filled before the request's task wakes up, so a request cancelled in between
    still has its reservation returned."""

    admission: Admission | None


class InProcessAdmissions(Generic[Ask]):
    """The in-process admissions of one event-loop iteration, run in one callback.

    ``admit`` turns what a request asks for into its ``Admission`` (or raises its refusal);
    it must not wait on anything: it runs synchronously, in arrival order.
    """

    def __init__(self, admit: Callable[[Ask], Admission]) -> None:
        self._admit = admit
        self._pending: list[tuple[Ask, AdmissionSlot, asyncio.Future[Admission]]] = []
        self._callback: asyncio.Handle | None = None

    @property
    def queued(self) -> bool:
        """Admissions are waiting for this iteration's batch."""
        return bool(self._pending)

    def admit(self, ask: Ask, slot: AdmissionSlot) -> asyncio.Future[Admission]:
        """Queue ``ask``; the future gets its admission (also put in ``slot``) or refusal
        within the next loop iteration."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Admission] = loop.create_future()
        self._pending.append((ask, slot, future))
        if self._callback is None:
            self._callback = loop.call_soon(self._admit_all)
        return future

    def _admit_all(self) -> None:
        self._callback = None
        batch, self._pending = self._pending, []
        admit = self._admit
        for ask, slot, future in batch:
            if future.cancelled():
                continue  # its caller is gone: reserve nothing
            try:
                admission = admit(ask)
            except Exception as exc:  # a refusal, or a bug: that request's answer alone
                future.set_exception(exc)
            else:
                slot.admission = admission
                future.set_result(admission)


class AdmissionBatcher(BatchQueue[_Queued]):
    def __init__(self, engine: PolicyEngine, settlements: SettlementBatcher | None = None) -> None:
        super().__init__("admissions")
        self._engine = engine
        self._busy = False  # a call to the backend is in flight: newcomers queue
        self._settlements = settlements  # whose queue each batch's call takes along
        if settlements is not None:
            settlements.carried_by(self._in_flight)

    def _in_flight(self) -> bool:
        return self._busy

    async def admit(self, request: AdmissionRequest) -> Admission:
        """``PolicyEngine.admit``, batched with whatever else is waiting."""
        if self._busy:
            future: asyncio.Future[Admission] = asyncio.get_running_loop().create_future()
            self._pending.append((request, future))
            return await future
        self._busy = True  # idle: this one goes at once, with no hand-over to another task
        try:
            if self._settlements is None or not self._settlements.queued:
                return await self._engine.admit(request)
            (result,) = await self._admit_carrying([request])
            if isinstance(result, PolicyRejection):
                raise result
            return result
        finally:
            if self._pending:  # those that queued meanwhile go next, together
                self._start()
            else:
                self._drained()

    async def _admit_carrying(
        self, requests: list[AdmissionRequest]
    ) -> list[Admission | PolicyRejection]:
        """``admit_many``, settling the queued settlements in the same call."""
        carried = self._settlements.take() if self._settlements is not None else []
        try:
            return await self._engine.admit_many(requests, carried)
        except Exception as exc:
            if carried:  # the Redis backend keeps them for its next call
                log.warning("settling %d reservations failed: %r", len(carried), exc)
            raise

    async def _run(self, batch: list[_Queued]) -> None:
        try:
            results = await self._admit_carrying([r for r, _ in batch])
        except Exception as exc:  # the backend failed: every request in it fails
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            await self._answer(future, result)

    def _drained(self) -> None:
        self._busy = False
        if self._settlements is not None:
            self._settlements.send_waiting()

    async def _answer(
        self, future: asyncio.Future[Admission], result: Admission | PolicyRejection
    ) -> None:
        if not future.cancelled():
            if isinstance(result, Admission):
                future.set_result(result)
            else:
                future.set_exception(result)
        elif isinstance(result, Admission):
            try:
                await self._engine.release(result)  # nobody will use or settle it
            except Exception:
                log.exception("releasing the orphaned reservation %s failed", result.lease_id)
