"""Settling finished requests' reservations in batches, off the request's own path.

A request's settlement has nothing to tell its client (the answer is already sent) and only
has to happen soon: until it does, the reservation (a bound of the real cost) keeps holding
budget, which is the conservative side. So instead of one backend call per request, requests
that finish during one event-loop iteration are settled together by one task:

- on Redis that is one script call (one round trip) for the whole batch instead of one per
  request, and requests finishing while it is in flight form the next batch (group commit);
- in process it runs the settlement code back to back while it is warm in the CPU caches:
  measured in the live gateway, a settlement one at a time cost ~35-50 µs of CPU, several
  times what the same code costs in a tight loop. There the batch is a plain callback
  (``call_soon``) calling the synchronous ``settle_many_now``: no task, no coroutines, since
  nothing in it waits.

A failed batch is logged and its leases expire on their own (``state.lease_seconds``), which
returns the reservations: the spend is then not counted, as with any lost settlement.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

from costwarden.gateway.batching import BatchQueue
from costwarden.policy.engine import Admission, PolicyEngine

log = logging.getLogger("costwarden.gateway")

_Pending = tuple[Admission, Decimal | None, int | None]


class SettlementBatcher(BatchQueue[_Pending]):
    def __init__(self, engine: PolicyEngine) -> None:
        super().__init__("settlements")
        self._engine = engine
        self._local = engine.local
        self._callback: asyncio.Handle | None = None  # the scheduled in-process batch

    def settle(self, admission: Admission, cost: Decimal | None, tokens: int | None) -> None:
        """Queue one settlement; it runs in the next loop iteration at the latest."""
        self._pending.append((admission, cost, tokens))
        if not self._local:
            self._start()
        elif self._callback is None:
            self._callback = asyncio.get_running_loop().call_soon(self._settle_now)

    async def flush(self) -> None:
        if self._callback is not None:
            self._callback.cancel()
            self._settle_now()
        await super().flush()

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
