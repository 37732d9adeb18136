"""The durable ledger: one UsageRecord per client request, never lost once appended.

    ledger = await Ledger.open(settings.ledger)   # replays what a crash left behind
    ledger.append_pending(record)                  # before the first upstream attempt
    ledger.append(record)                          # hot path: one write(), no await
    await ledger.flush()                           # everything appended so far is stored
    rows = await ledger.store.spend(["team"], since, until, {})
    await ledger.close()

See ``spool.py`` for the durability model and ``writer.py`` for the copier.
"""

from costwarden.ledger.backends import open_store
from costwarden.ledger.rows import LedgerRow, row_from_record
from costwarden.ledger.spool import LedgerClosedError
from costwarden.ledger.store import (
    DIMENSIONS,
    Checkpoint,
    ReportQueryError,
    SpendRow,
    Store,
    VirtualKey,
)
from costwarden.ledger.writer import Ledger, LedgerStats, WriterTuning

__all__ = [
    "DIMENSIONS",
    "Checkpoint",
    "Ledger",
    "LedgerClosedError",
    "LedgerRow",
    "LedgerStats",
    "ReportQueryError",
    "SpendRow",
    "Store",
    "VirtualKey",
    "WriterTuning",
    "open_store",
    "row_from_record",
]
