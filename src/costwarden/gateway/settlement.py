"""Settling finished requests' reservations in batches, off the request's own path.

A request's settlement has nothing to tell its client (the answer is already sent) and only
has to happen soon: until it does, the reservation (a bound of the real cost) keeps holding
budget, which is the conservative side. So instead of one backend call per request, requests
that finish during one event-loop iteration are settled together by one task:

- on Redis that is one script call (one round trip) for the whole batch instead of one per
  request, and requests finishing while it is in flight form the next batch (group commit);
- in process it runs the settlement code back to back while it is warm in the CPU caches:
  measured in the live gateway, a settlement one at a time cost ~35-50 µs of CPU, several
  times what the same code costs in a tight loop.

A failed batch is logged and its leases expire on their own (``state.lease_seconds``), which
returns the reservations: the spend is then not counted, as with any lost settlement.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

from costwarden.policy.engine import Admission, PolicyEngine

log = logging.getLogger("costwarden.gateway")

_Pending = tuple[Admission, Decimal | None, int | None]


class SettlementBatcher:
    def __init__(self, engine: PolicyEngine) -> None:
        self._engine = engine
        self._pending: list[_Pending] = []
        self._task: asyncio.Task[None] | None = None

    def settle(self, admission: Admission, cost: Decimal | None, tokens: int | None) -> None:
        """Queue one settlement; it runs in the next loop iteration at the latest."""
        self._pending.append((admission, cost, tokens))
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="settlements")

    async def flush(self) -> None:
        """Wait until everything queued so far is settled (shutdown, tests)."""
        while self._task is not None:
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._engine.settle_many(batch)
                except Exception:
                    log.exception("settling %d reservations failed", len(batch))
        finally:
            self._task = None
