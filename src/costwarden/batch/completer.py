"""Outcomes to the queue in group commits, and records to the ledger in the safe order.

Tries finish one by one, but each is stored in the same transaction as whatever else finished
meanwhile: one commit per batch of outcomes instead of one per item, which is what lets a few
workers on one SQLite file keep up with hundreds of requests in flight.

Order, per outcome: a failed try's record goes to the ledger first (its item may be retried;
the try stays on record either way). A done try is stored in the queue first, with its record,
and appended to the ledger after: if the worker dies in between, the catch-up appends it from
the queue. A done try whose lease was lost (another worker re-claimed the item) is still
appended — the money was spent — marked ``batch_lease_lost``.
"""

from __future__ import annotations

import asyncio
import logging

from costwarden.batch.models import ItemStatus, Outcome
from costwarden.batch.queue import ItemQueue
from costwarden.batch.recording import lease_lost
from costwarden.ledger import Ledger
from costwarden.records import UsageRecord

log = logging.getLogger("costwarden.batch")
_Entry = tuple[Outcome, UsageRecord, "asyncio.Future[bool]"]


class Completer:
    def __init__(self, items: ItemQueue, ledger: Ledger) -> None:
        self._items = items
        self._ledger = ledger
        self._entries: list[_Entry] = []
        self._wake = asyncio.Event()
        self._appended: list[str] = []  # done items appended, not yet marked recorded
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="batch-completer")

    async def finish(self, outcome: Outcome, record: UsageRecord) -> bool:
        """Store one try's outcome; True if it applied (the lease was still ours)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._entries.append((outcome, record, future))
        self._wake.set()
        # Shielded: a try cancelled while waiting here is already the completer's to record.
        return await asyncio.shield(future)

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._entries:
                batch, self._entries = self._entries, []
                await self._commit(batch)
            if self._closing:
                return

    async def _commit(self, batch: list[_Entry]) -> None:
        for outcome, record, _ in batch:
            if outcome.status != ItemStatus.DONE:
                self._ledger.append(record)
        try:
            applied = await self._items.finish([outcome for outcome, _, _ in batch])
        except Exception as exc:
            log.exception(
                "batch: storing %d outcomes failed; their items will be retried", len(batch)
            )
            self._settle(batch, set(), exc)
            return
        self._settle(batch, applied, None)

    def _settle(self, batch: list[_Entry], applied: set[str], error: Exception | None) -> None:
        for outcome, record, future in batch:
            kept = outcome.item_id in applied
            if outcome.status == ItemStatus.DONE:
                if not kept:
                    lease_lost(record)
                self._ledger.append(record)
                if kept:
                    self._appended.append(outcome.item_id)
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(kept)

    async def mark_recorded(self) -> int:
        """Once the ledger has stored the done items appended so far, say so in the queue
        (the catch-up then skips them); return how many."""
        ids, self._appended = self._appended, []
        if not ids:
            return 0
        try:
            await self._ledger.flush()
            await self._items.mark_recorded(ids)
        except Exception:
            self._appended.extend(ids)  # the catch-up would find them anyway; retry first
            raise
        return len(ids)

    async def close(self) -> None:
        """Store what is still waiting (never cut a commit short), then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        while self._entries:  # never started, or added after the loop ended
            batch, self._entries = self._entries, []
            await self._commit(batch)
        await self.mark_recorded()
