"""Child process for the kill -9 test: appends records until it is killed.

    python -m tests.ledger.kill_writer CONFIG_JSON

Prints each request_id on its own line *after* ``Ledger.append`` returned for it, so every id
the parent reads was accepted by the ledger before the kill.
"""

from __future__ import annotations

import asyncio
import sys

import orjson

from costwarden.config import LedgerConfig
from costwarden.ledger import Ledger, WriterTuning
from tests.ledger.factory import make_record

# Small segments, so the kill finds several of them (rotated and current).
TUNING = WriterTuning(max_segment_bytes=32 * 1024)
MAX_RECORDS = 1_000_000  # the parent kills us long before


async def append_until_killed(config: LedgerConfig) -> None:
    ledger = await Ledger.open(config, tuning=TUNING)
    out = sys.stdout
    for index in range(MAX_RECORDS):
        record = make_record(index)
        ledger.append(record)
        out.write(record.request_id + "\n")
        out.flush()
        if index % 20 == 0:
            await asyncio.sleep(0)  # let the copier run, so the store holds a part


def main() -> None:
    config = LedgerConfig.model_validate(orjson.loads(sys.argv[1]))
    asyncio.run(append_until_killed(config))


if __name__ == "__main__":
    main()
