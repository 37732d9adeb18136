"""Settling finished requests' reservations in batches, off the request's own path.

A request's settlement has nothing to tell its client (the answer is already sent) and only
has to happen soon: until it does, the reservation (a bound of the real cost) keeps holding
budget, which is the conservative side. So instead of one backend call per request, requests
that finish during one event-loop iteration are settled together by one task:

- on Redis that is one script call (one round trip) for the whole batch instead of one per
  request, and requests finishing while it is in flight form the next batch (group commit).
  Settlements go along in the next admission call instead (``carried_by``): those queued
  while an admission call is in flight wait for the next one, and those queued when none is
  wait up to ``CARRY_WAIT_S`` for one, then go on their own. On a small machine each call's
  network wake-ups cost more CPU than the script, and the gateway's main thread pays its
  share: this halves the calls a request makes, at any load;
- in process it runs the settlement code back to back while it is warm in the CPU caches:
  measured in the live gateway, a settlement one at a time cost ~35-50 µs of CPU, several
  times what the same code costs in a tight loop. There the batch is a plain callback
  (``call_soon``) calling the synchronous ``settle_many_now``: no task, no coroutines, since
  nothing in it waits.

A failed batch is logged. On Redis a batch that could not reach it is kept by the backend and
sent with its next call (``state/redis.py``), so its spend is still counted; otherwise its
leases expire on their own (``state.lease_seconds``), which returns the reservations.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal

from costwarden.gateway.batching import BatchQueue
from costwarden.policy.engine import Admission, PolicyEngine

log = logging.getLogger("costwarden.gateway")

# How long settlements wait for an admission call to go along with: about the time between a
# request's answer and its client's next request on a busy connection (measured at one wrk
# connection: ~1-2 ms). Until they go, their reservations hold budget: the conservative side.
CARRY_WAIT_S = 0.005

_Pending = tuple[Admission, Decimal | None, int | None]


class SettlementBatcher(BatchQueue[_Pending]):
    def __init__(self, engine: PolicyEngine, carry_wait_s: float = CARRY_WAIT_S) -> None:
        super().__init__("settlements")
        self._engine = engine
        self._local = engine.local
        self._callback: asyncio.Handle | None = None  # the scheduled in-process batch
        # Whether a call that will take the queue along is in flight; None: no carrier.
        self._carried: Callable[[], bool] | None = None
        self._carry_wait_s = carry_wait_s
        self._timer: asyncio.TimerHandle | None = None  # the wait for a carrier ends

    def carried_by(self, in_flight: Callable[[], bool]) -> None:
        """Queued settlements go along in the carrier's calls (``take``): while
        ``in_flight()``, in its next one; otherwise in one made within ``carry_wait_s``, or
        on their own after that (also after ``send_waiting``: the carrier has none to make)."""
        self._carried = in_flight

    def settle(self, admission: Admission, cost: Decimal | None, tokens: int | None) -> None:
        """Queue one settlement; it runs in the next loop iteration at the latest, or (with
        a carrier) along with admissions, ``carry_wait_s`` at the latest when none is due."""
        self._pending.append((admission, cost, tokens))
        if self._local:
            if self._callback is None:
                self._callback = asyncio.get_running_loop().call_soon(self._settle_now)
        elif self._carried is None:
            self._start()
        elif not self._carried():
            self._wait_for_carrier()

    @property
    def queued(self) -> bool:
        """Settlements are waiting to be sent."""
        return bool(self._pending)

    def take(self) -> list[_Pending]:
        """The queued settlements, for a call that sends them along (and so settles them)."""
        batch, self._pending = self._pending, []
        self._stop_waiting()
        return batch

    def send_waiting(self) -> None:
        """The carrier has no call in flight: the queue waits a little for its next one."""
        if self._pending:
            self._wait_for_carrier()

    async def flush(self) -> None:
        if self._callback is not None:
            self._callback.cancel()
            self._settle_now()
        self._stop_waiting()
        if self._pending and not self._local:
            self._start()
        await super().flush()

    def _wait_for_carrier(self) -> None:
        if self._timer is None and self._task is None:  # a running batch drains the queue
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._carry_wait_s, self._go_alone)

    def _go_alone(self) -> None:
        self._timer = None
        if self._pending:
            self._start()

    def _stop_waiting(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _settle_now(self) -> None:
        self._callback = None
        batch, self._pending = self._pending, []
        try:
            self._engine.settle_many_now(batch)
        except Exception:
            log.exception("settling %d reservations failed", len(batch))

    async def _run(self, batch: list[_Pending]) -> None:
        try:
            await self._engine.settle_many(batch)
        except Exception:
            log.exception("settling %d reservations failed", len(batch))
