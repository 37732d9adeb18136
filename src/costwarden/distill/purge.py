"""The retention purge of captured pairs, as a monitor job (``monitor/jobs.py``): it runs in
the one replica holding the monitor lease, every ``capture.purge_interval_s``.

A pair is deleted once the ``expires_at`` it was stored with has passed, or once it is older
than its feature's retention as configured now (a retention shortened since capture applies
at once). The job runs whether capture is on or not: turning capture off must not keep what
was captured before past its retention.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from costwarden.config import LedgerConfig
from costwarden.distill.config import CaptureConfig
from costwarden.distill.storage import PairStore, open_pair_store
from costwarden.distill.writer import OpenPairStore

log = logging.getLogger("costwarden.distill")


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
