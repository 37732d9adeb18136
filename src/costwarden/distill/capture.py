"""The capture stage: a savings-seam stage that asks to see the answers of the features that
opted in, and hands each to the background writer after the client has it.

It never answers, rewrites or delays a request. It declares the features it acts on
(``features``), so with capture as the only stage a request of any other feature does not
even get an ``Exchange``: zero added work. For a captured feature it costs a dict lookup and a
random draw before the call, and a non-blocking queue put after the client has its answer
(a streamed answer is folded back into JSON by ``savings/answers.py`` as it passes, as for
the exact cache). It runs last, so a request a cache answered is not captured: it never
reached a model, and its answer is already on record from the first time.

The retention purge is a monitor job (``monitor/jobs.py``): it runs in the one replica holding
the monitor lease, every ``capture.purge_interval_s``. A pair is deleted once the
``expires_at`` it was stored with has passed, or once it is older than its feature's retention
as configured now (a retention shortened since capture applies at once). The job runs whether
capture is on or not: turning capture off must not keep what was captured past its retention.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any

from costwarden.config import LedgerConfig, Settings
from costwarden.distill.config import CaptureConfig
from costwarden.distill.storage import PairStore, open_pair_store
from costwarden.distill.writer import CaptureWriter, OpenPairStore, Pending
from costwarden.providers.base import CHAT, MESSAGES
from costwarden.records import Status
from costwarden.savings.stages import BaseStage, Exchange, Reply

log = logging.getLogger("costwarden.distill")

_NOTE = "capture"
_APIS = frozenset({CHAT, MESSAGES})


class CaptureStage(BaseStage):
    name = _NOTE

    def __init__(
        self, config: CaptureConfig, writer: CaptureWriter, rng: random.Random | None = None
    ) -> None:
        self._rates = {name: f.sample_rate for name, f in config.active_features().items()}
        self.features = frozenset(self._rates)
        self._writer = writer
        self._random = (rng or random.Random()).random
        self._max_bytes = config.max_pair_bytes

    async def on_request(self, ex: Exchange) -> Reply | None:
        feature = ex.record.tags.feature
        rate = self._rates.get(feature) if feature is not None else None
        if rate is None or ex.api not in _APIS:
            return None
        if rate >= 1.0 or self._random() < rate:
            ex.keep_answer = True
            ex.notes[_NOTE] = feature
        return None

    async def on_answer(self, ex: Exchange, answer: dict[str, Any]) -> None:
        feature = ex.notes.get(_NOTE)
        if feature is None or ex.record.status is not Status.OK:
            return
        usage = ex.record.usage
        if usage.input_tokens + usage.output_tokens > self._max_bytes:
            return  # a token is at least a byte: surely too big, and not worth queueing
        self._writer.offer(Pending(feature, ex.api, ex.payload, answer, ex.record))

    async def close(self) -> None:
        await self._writer.close()


def build_capture_stage(settings: Settings) -> CaptureStage | None:
    """The capture stage when some feature's traffic is captured; None otherwise."""
    config = settings.distill.capture
    if not config.active_features():
        return None
    return CaptureStage(config, CaptureWriter(config, settings.ledger))


def retention_cutoffs(config: CaptureConfig, now: datetime) -> dict[str, datetime]:
    """Per configured feature (paused ones too), the oldest capture time it may keep."""
    return {
        name: now - timedelta(days=feature.retention_days)
        for name, feature in config.features.items()
    }


async def purge_expired(store: PairStore, config: CaptureConfig, now: datetime) -> int:
    """Delete the pairs past their retention at ``now``; how many."""
    return await store.purge(now, retention_cutoffs(config, now))


class CapturePurgeJob:
    name = "capture_purge"

    def __init__(
        self,
        config: CaptureConfig,
        ledger: LedgerConfig,
        open_store: OpenPairStore = open_pair_store,
    ) -> None:
        self._config = config
        self._ledger = ledger
        self._open_store = open_store
        self.interval_s = config.purge_interval_s

    async def run(self, now: datetime) -> None:
        # A connection per run: the job runs hourly, and holding one (or a PostgreSQL pool)
        # open between runs for a table that is often empty is not worth it.
        store = await self._open_store(self._ledger)
        try:
            deleted = await purge_expired(store, self._config, now)
        finally:
            await store.close()
        if deleted:
            log.info("capture purge: deleted %d pairs past their retention", deleted)
