"""The background writer of captured pairs: the request path only queues; a task turns queued
answers into redacted pairs (on a thread: regexes over long prompts are CPU work) and stores
them in batches.

Capture is best-effort by design. The queue is bounded: when the writer falls behind (a slow
or unreachable database) new pairs are dropped with a log line, never waited for, and a
failed batch is logged and dropped. A pair is training data, not a ledger record: losing some
costs nothing that was promised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson

from costwarden.config import LedgerConfig
from costwarden.distill.config import CaptureConfig, FeatureCapture
from costwarden.distill.conversation import NotText, conversation, prompt_hash
from costwarden.distill.redaction import RedactionChain
from costwarden.distill.storage import CapturedPair, PairStore, open_pair_store
from costwarden.records import UsageRecord

log = logging.getLogger("costwarden.distill")

_DROP_LOG_INTERVAL_S = 10.0  # one log line per burst of drops, not one per request
_CLOSE_TIMEOUT_S = 5.0

OpenPairStore = Callable[[LedgerConfig], Awaitable[PairStore]]


@dataclass(slots=True)
class Pending:
    """An answered request waiting to become a pair (nothing done to it yet)."""

    feature: str
    api: str
    payload: dict[str, Any]
    answer: dict[str, Any]
    record: UsageRecord


class _Policy:
    """One feature's capture settings with its redaction chain, built once."""

    def __init__(self, config: FeatureCapture) -> None:
        self.retention = timedelta(days=config.retention_days)
        self.redact = RedactionChain(config.redact)


def make_pair(item: Pending, policy: _Policy, max_bytes: int) -> CapturedPair | None:
    """The stored form of one answered request; None when it is not plain text or too big."""
    try:
        messages = policy.redact(conversation(item.api, item.payload, item.answer))
    except NotText:
        return None
    if len(orjson.dumps(messages)) > max_bytes:
        return None
    record = item.record
    return CapturedPair(
        request_id=record.request_id,
        feature=item.feature,
        captured_at=record.created_at,
        expires_at=record.created_at + policy.retention,
        api=item.api,
        model=record.resolved_model or record.requested_model,
        prompt_hash=prompt_hash(messages),
        messages=messages,
        input_tokens=record.usage.input_tokens,
        output_tokens=record.usage.output_tokens,
    )


class CaptureWriter:
    def __init__(
        self,
        config: CaptureConfig,
        ledger: LedgerConfig,
        open_store: OpenPairStore = open_pair_store,
    ) -> None:
        self._config = config
        self._ledger = ledger
        self._open_store = open_store
        self._policies = {name: _Policy(f) for name, f in config.active_features().items()}
        self._queue: asyncio.Queue[Pending] | None = None  # made on the running loop
        self._task: asyncio.Task[None] | None = None
        self._store: PairStore | None = None
        self.dropped = 0
        self._last_drop_log = -_DROP_LOG_INTERVAL_S

    def offer(self, item: Pending) -> bool:
        """Queue ``item`` without waiting; False (and a log line now and then) when full."""
        if self._queue is None:
            self._queue = asyncio.Queue(self._config.queue_size)
            self._task = asyncio.create_task(self._run(), name="costwarden-capture")
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._dropped(item)
            return False
        return True

    def _dropped(self, item: Pending) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_INTERVAL_S:
            self._last_drop_log = now
            log.warning(
                "capture queue full (%d pairs): dropped the pair of request %s "
                "(%d dropped since start)",
                self._config.queue_size,
                item.record.request_id,
                self.dropped,
            )

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            batch = [await queue.get()]
            while len(batch) < self._config.batch_size and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self._write(batch)
            except Exception:
                log.exception("capture: storing %d pairs failed; they are dropped", len(batch))
            finally:
                for _ in batch:
                    queue.task_done()

    async def _write(self, batch: Sequence[Pending]) -> None:
        pairs = await asyncio.to_thread(self._prepare, batch)
        if not pairs:
            return
        if self._store is None:
            self._store = await self._open_store(self._ledger)
        await self._store.insert(pairs)

    def _prepare(self, batch: Sequence[Pending]) -> list[CapturedPair]:
        limit = self._config.max_pair_bytes
        made = (make_pair(item, self._policies[item.feature], limit) for item in batch)
        return [pair for pair in made if pair is not None]

    async def flush(self) -> None:
        """Wait until every queued pair is stored (or dropped after a failure)."""
        if self._queue is not None:
            await self._queue.join()

    async def close(self) -> None:
        if self._queue is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush(), _CLOSE_TIMEOUT_S)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._store is not None:
            await self._store.close()
            self._store = None
