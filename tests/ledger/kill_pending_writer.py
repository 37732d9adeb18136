"""Child process for the in-flight kill -9 test: requests start, most finish, then SIGKILL.

    python -m tests.ledger.kill_pending_writer CONFIG_JSON

Request ``i`` is marked pending (``append_pending``) when it starts. It finishes (``append``)
``LAG`` requests later, so that its two lines often fall in different batches and segments,
unless ``i % 3 == 0``: those never finish. Prints ``P <id> <1 if it will finish else 0>``
after ``append_pending`` returned and ``F <id>`` after ``append`` returned, so every line the
parent reads was accepted by the ledger before the kill.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque

import orjson

from costwarden.config import LedgerConfig
from costwarden.ledger import Ledger, WriterTuning
from costwarden.records import UsageRecord
from tests.ledger.factory import make_record

# Small segments, so that the kill finds several of them (rotated and current).
TUNING = WriterTuning(max_segment_bytes=32 * 1024)
LAG = 7
MAX_REQUESTS = 1_000_000  # the parent kills us long before


def will_finish(index: int) -> bool:
    return index % 3 != 0


async def run_until_killed(config: LedgerConfig) -> None:
    ledger = await Ledger.open(config, tuning=TUNING)
    out = sys.stdout
    running: deque[tuple[int, UsageRecord]] = deque()
    for index in range(MAX_REQUESTS):
        record = make_record(index)
        ledger.append_pending(record)
        out.write(f"P {record.request_id} {int(will_finish(index))}\n")
        running.append((index, record))
        if len(running) > LAG:
            started, finished = running.popleft()
            if will_finish(started):
                ledger.append(finished)
                out.write(f"F {finished.request_id}\n")
        out.flush()
        if index % 20 == 0:
            await asyncio.sleep(0)  # let the copier run, so the store holds a part


def main() -> None:
    config = LedgerConfig.model_validate(orjson.loads(sys.argv[1]))
    asyncio.run(run_until_killed(config))


if __name__ == "__main__":
    main()
