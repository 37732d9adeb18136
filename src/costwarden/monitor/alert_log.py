"""The alert sink that keeps every alert in the ledger database, for the dashboard's event list.

``emit`` runs on the request path (policy events), so it only appends to a bounded queue; a
background task writes batches. Alerts that would overflow the queue are dropped with a log
line: the log and webhook sinks still carry them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from costwarden.ledger.store import Store, StoredAlert
from costwarden.monitor.alerts import Alert

log = logging.getLogger("costwarden.alerts")

_BATCH = 100


def stored(alert: Alert, now: datetime | None = None) -> StoredAlert:
    at = datetime.fromtimestamp(alert.at, UTC) if alert.at > 0 else (now or datetime.now(UTC))
    return StoredAlert(
        at=at,
        kind=alert.kind,
        severity=alert.severity,
        title=alert.title,
        text=alert.text,
        scope=alert.scope,
        dedup_key=alert.dedup_key,
        fields=dict(alert.fields),
    )


class LedgerAlertSink:
    def __init__(self, store: Store, queue_size: int = 1000) -> None:
        self._store = store
        self._queue: asyncio.Queue[StoredAlert] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="costwarden-alert-log")

    def emit(self, alert: Alert) -> None:
        try:
            self._queue.put_nowait(stored(alert))
        except asyncio.QueueFull:
            log.warning("alert log queue full: %s not stored", alert.kind)

    async def flush(self) -> None:
        """Store everything queued so far (tests and shutdown)."""
        batch = self._take()
        while batch:
            await self._write(batch)
            batch = self._take()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()

    def _take(self) -> list[StoredAlert]:
        batch: list[StoredAlert] = []
        while len(batch) < _BATCH and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _drain(self) -> None:
        while True:
            batch = [await self._queue.get()]
            batch += self._take()
            await self._write(batch)

    async def _write(self, batch: list[StoredAlert]) -> None:
        try:
            await self._store.record_alerts(batch)
        except Exception:
            log.exception("could not store %d alert(s) in the ledger", len(batch))
