"""Requests in flight: pending rows, their replacement by the final record, and the rows a dead
gateway process left in flight marked interrupted (kill -9 included). Both backends."""

from __future__ import annotations

import asyncio
import signal
import sys
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from costwarden.config import LedgerConfig
from costwarden.ledger import Checkpoint, Ledger, LedgerRow, Store, WriterTuning, open_store
from costwarden.ledger.rows import encode_pending, encode_record, row_from_line
from costwarden.ledger.spool import writer_of
from costwarden.ledger.sql import INTERRUPTED_MESSAGE
from costwarden.records import Status, TokenUsage, UsageRecord
from tests.ledger.factory import make_record

REPO_ROOT = Path(__file__).resolve().parents[2]
DEAD_WRITER = "4242-1700000000000000000-deadbeef"
LIVE_WRITER = "4343-1700000000000000000-cafecafe"
SMALL_SEGMENTS = WriterTuning(max_segment_bytes=4 * 1024)


def pending_row(record: UsageRecord, writer: str = DEAD_WRITER) -> LedgerRow:
    return row_from_line(orjson.loads(encode_pending(record)), writer)


def final_row(record: UsageRecord, writer: str = DEAD_WRITER) -> LedgerRow:
    return row_from_line(orjson.loads(encode_record(record)), writer)


def dead_segment(config: LedgerConfig, seq: int, content: bytes) -> Path:
    """A segment of the dead writer ``DEAD_WRITER``, as it leaves it: unlocked."""
    spool_dir = Path(config.spool_dir)
    spool_dir.mkdir(parents=True, exist_ok=True)
    path = spool_dir / f"seg-{DEAD_WRITER}-{seq:06d}.spool"
    path.write_bytes(content)
    return path


def spool_files(config: LedgerConfig) -> list[str]:
    return sorted(path.name for path in Path(config.spool_dir).iterdir())


async def status_of(store: Store, request_id: str) -> Status | None:
    record = await store.get_record(request_id)
    return None if record is None else record.status


# -- the store: which row wins ----------------------------------------------------------------


@pytest.mark.parametrize("batching", ["one batch", "two batches"])
@pytest.mark.parametrize("order", ["pending first", "final first (a replay)"])
async def test_the_final_record_wins_in_any_order_and_batching(
    ledger_store: Store, order: str, batching: str
) -> None:
    records = [make_record(i) for i in range(3)]
    pending = [pending_row(r) for r in records]
    final = [final_row(r) for r in records]
    first, second = (pending, final) if order == "pending first" else (final, pending)
    if batching == "one batch":
        await ledger_store.insert_rows([*first, *second])
    else:
        await ledger_store.insert_rows(first)
        await ledger_store.insert_rows(second)
    assert await ledger_store.count_records() == 3
    for record in records:
        assert await ledger_store.get_record(record.request_id) == record


async def test_a_pending_row_is_in_flight_with_no_cost(ledger_store: Store) -> None:
    record = make_record(stream=True)
    await ledger_store.insert_rows([pending_row(record)])
    stored = await ledger_store.get_record(record.request_id)
    assert stored is not None
    assert (stored.status, stored.cost, stored.http_status) == (Status.IN_FLIGHT, None, 0)
    assert (stored.usage, stored.attempts, stored.finished_at) == (TokenUsage(), [], None)
    kept = ["created_at", "api", "stream", "principal", "tags"]
    kept += ["requested_model", "resolved_model", "provider", "upstream_model"]
    assert all(getattr(stored, name) == getattr(record, name) for name in kept)


async def test_a_final_row_is_never_replaced(ledger_store: Store) -> None:
    record = make_record()
    other_final = make_record(cost=Decimal(7), request_id=record.request_id)
    await ledger_store.insert_rows([final_row(record)])
    await ledger_store.insert_rows([pending_row(record), final_row(other_final)])
    assert await ledger_store.get_record(record.request_id) == record


async def test_interrupt_marks_only_the_writers_rows_in_flight(ledger_store: Store) -> None:
    dead_a, dead_b, dead_done, live = (make_record(i) for i in range(4))
    await ledger_store.insert_rows(
        [
            pending_row(dead_a),
            pending_row(dead_b),
            final_row(dead_done),
            pending_row(live, LIVE_WRITER),
        ]
    )
    assert await ledger_store.interrupt_in_flight(DEAD_WRITER) == 2
    for record in (dead_a, dead_b):
        stored = await ledger_store.get_record(record.request_id)
        assert stored is not None and stored.status is Status.INTERRUPTED
        assert (stored.error_type, stored.error_message) == ("interrupted", INTERRUPTED_MESSAGE)
        assert (stored.cost, stored.cost_input, stored.cost_output) == (None, None, None)
    assert await ledger_store.get_record(dead_done.request_id) == dead_done
    assert await status_of(ledger_store, live.request_id) is Status.IN_FLIGHT
    assert await ledger_store.interrupt_in_flight(DEAD_WRITER) == 0  # idempotent


async def test_a_late_final_line_replaces_an_interrupted_row(ledger_store: Store) -> None:
    # The final line may sit in a segment another process replays after the marking.
    record = make_record()
    await ledger_store.insert_rows([pending_row(record)])
    await ledger_store.interrupt_in_flight(DEAD_WRITER)
    await ledger_store.insert_rows([pending_row(record)])  # a replayed pending line: no effect
    assert await status_of(ledger_store, record.request_id) is Status.INTERRUPTED
    await ledger_store.insert_rows([final_row(record)])
    assert await ledger_store.get_record(record.request_id) == record


async def test_in_flight_and_interrupted_count_as_requests_of_unknown_cost(
    ledger_store: Store,
) -> None:
    done, interrupted, running = (make_record(i) for i in range(3))
    await ledger_store.insert_rows([final_row(done), pending_row(interrupted)])
    await ledger_store.interrupt_in_flight(DEAD_WRITER)
    await ledger_store.insert_rows([pending_row(running, LIVE_WRITER)])
    (total,) = await ledger_store.spend([])
    assert (total.requests, total.cost, total.unknown_cost_requests) == (3, done.cost, 2)
    by_status = {row.group["status"]: row for row in await ledger_store.spend(["status"])}
    assert by_status.keys() == {"in_flight", "interrupted", "ok"}
    assert by_status["interrupted"].cost == 0 and by_status["interrupted"].requests == 1


# -- the ledger: append_pending, close, replay ------------------------------------------------


async def test_append_pending_then_append_stores_the_final_record(
    ledger_config: LedgerConfig,
) -> None:
    ledger = await Ledger.open(ledger_config)
    try:
        record = make_record()
        ledger.append_pending(record)
        await ledger.flush()
        assert await status_of(ledger.store, record.request_id) is Status.IN_FLIGHT
        assert ledger.in_flight == 1
        ledger.append(record)
        await ledger.flush()
        assert await ledger.store.get_record(record.request_id) == record
        assert (ledger.in_flight, ledger.stats.pending, ledger.stats.appended) == (0, 1, 1)
    finally:
        await ledger.close()
    assert spool_files(ledger_config) == []


async def test_pending_superseded_in_its_batch_is_not_written(ledger_config: LedgerConfig) -> None:
    ledger = await Ledger.open(ledger_config)
    try:
        record = make_record()
        ledger.append_pending(record)
        ledger.append(record)  # no await in between: both lines are read in one batch
        await ledger.flush()
        assert ledger.stats.lines_copied == 1
        assert await ledger.store.get_record(record.request_id) == record
    finally:
        await ledger.close()


async def test_only_pendings_finished_in_their_batch_are_dropped(
    ledger_config: LedgerConfig,
) -> None:
    """Pending lines are read by their first bytes, or decoded in full when the id holds a JSON
    escape; either way one is dropped only when its final line is in the same batch."""
    finished = [make_record(0), make_record(1, request_id='cw-"escaped\\id"')]
    running = [make_record(2), make_record(3, request_id="cw-\\still-running")]
    ledger = await Ledger.open(ledger_config)
    try:
        for record in [*finished, *running]:
            ledger.append_pending(record)
        for record in finished:
            ledger.append(record)  # no await since the first append: all in one batch
        await ledger.flush()
        assert ledger.stats.lines_copied == 4
        for record in finished:
            assert await ledger.store.get_record(record.request_id) == record
        for record in running:
            assert await status_of(ledger.store, record.request_id) is Status.IN_FLIGHT
            ledger.append(record)
    finally:
        await ledger.close()


async def test_a_live_ledgers_requests_in_flight_are_never_interrupted(
    ledger_config: LedgerConfig,
) -> None:
    first = await Ledger.open(ledger_config, tuning=SMALL_SEGMENTS)
    running = make_record()
    first.append_pending(running)
    for index in range(1, 12):  # rotate: the pending line's segment is sealed and discarded
        first.append(make_record(index))
    await first.flush()
    second = await Ledger.open(ledger_config, tuning=SMALL_SEGMENTS)
    try:
        assert second.stats.segments_adopted == 0
        await second.flush()
        assert await status_of(first.store, running.request_id) is Status.IN_FLIGHT
        first.append(running)
        await first.flush()
        assert await first.store.get_record(running.request_id) == running
        assert first.stats.interrupted == second.stats.interrupted == 0
    finally:
        await first.close()
        await second.close()


async def test_close_with_a_request_in_flight_leaves_it_to_the_next_start(
    ledger_config: LedgerConfig,
) -> None:
    ledger = await Ledger.open(ledger_config)
    running, done = make_record(0), make_record(1)
    ledger.append_pending(running)
    ledger.append_pending(done)
    ledger.append(done)
    await ledger.close()
    assert len(spool_files(ledger_config)) == 1  # kept for the next start
    assert ledger.stats.interrupted == 0  # a clean close marks nothing

    reopened = await Ledger.open(ledger_config)
    try:
        assert await status_of(reopened.store, running.request_id) is Status.INTERRUPTED
        assert await reopened.store.get_record(done.request_id) == done
        assert reopened.stats.interrupted == 1
    finally:
        await reopened.close()
    assert spool_files(ledger_config) == []


async def test_replay_marks_only_what_no_segment_of_the_writer_finishes(
    ledger_config: LedgerConfig,
) -> None:
    finished_here, finished_next_segment, never = (make_record(i) for i in range(3))
    first = b"".join(encode_pending(r) for r in (finished_here, finished_next_segment, never))
    dead_segment(ledger_config, 3, first + encode_record(finished_here))
    dead_segment(ledger_config, 4, encode_record(finished_next_segment))

    ledger = await Ledger.open(ledger_config)
    try:
        assert ledger.stats.segments_adopted == 2
        for record in (finished_here, finished_next_segment):
            assert await ledger.store.get_record(record.request_id) == record
        assert await status_of(ledger.store, never.request_id) is Status.INTERRUPTED
        # Marked once, after the writer's last segment: never the one finished in segment 4.
        assert ledger.stats.interrupted == 1
    finally:
        await ledger.close()
    assert spool_files(ledger_config) == []


async def test_rows_stored_before_the_writer_died_are_interrupted_too(
    ledger_config: LedgerConfig,
) -> None:
    running = make_record()
    content = encode_pending(running)
    segment = dead_segment(ledger_config, 3, content)
    assert writer_of(segment.name) == DEAD_WRITER
    # The writer had copied its whole segment (checkpoint at the end) before it died.
    store = await open_store(ledger_config)
    await store.insert_rows([pending_row(running)], Checkpoint(segment.name, len(content)))
    await store.close()

    ledger = await Ledger.open(ledger_config)
    try:
        assert (ledger.stats.segments_adopted, ledger.stats.lines_copied) == (1, 0)
        assert await status_of(ledger.store, running.request_id) is Status.INTERRUPTED
    finally:
        await ledger.close()


# -- kill -9 ----------------------------------------------------------------------------------


async def test_sigkill_with_requests_in_flight(ledger_config: LedgerConfig) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.ledger.kill_pending_writer",
        orjson.dumps(ledger_config.model_dump(mode="json")).decode(),
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
    )
    assert child.stdout is not None
    lines: list[bytes] = []
    while len(lines) < 900:
        line = await child.stdout.readline()
        if not line.endswith(b"\n"):
            break
        lines.append(line)
    child.send_signal(signal.SIGKILL)
    rest = await child.stdout.read()
    await child.wait()
    assert child.returncode == -signal.SIGKILL
    assert len(lines) == 900, "the child died before it was killed"
    lines += [line + b"\n" for line in rest.split(b"\n")[:-1]]  # complete lines only

    started = {fields[1]: fields[2] == "1" for fields in _fields(lines, "P")}
    finished = {fields[1] for fields in _fields(lines, "F")}
    ledger = await Ledger.open(ledger_config)
    try:
        stored = await ledger.store.all_request_ids()
        assert started.keys() <= stored, "a request marked in flight has no record"
        assert len(stored - started.keys()) <= 1  # at most the one begun at the kill
        assert await ledger.store.count_records() == len(stored)
        statuses = {rid: await status_of(ledger.store, rid) for rid in stored}
        assert {rid for rid, s in statuses.items() if s is Status.OK} >= finished
        never_finish = {rid for rid, finishes in started.items() if not finishes}
        interrupted = {rid for rid, s in statuses.items() if s is Status.INTERRUPTED}
        assert never_finish and never_finish <= interrupted and not interrupted & finished
        assert set(statuses.values()) <= {Status.OK, Status.INTERRUPTED}  # none left in flight
        assert ledger.stats.interrupted == len(interrupted)
        assert ledger.stats.segments_adopted >= 2  # rotated and current segments
    finally:
        await ledger.close()
    assert spool_files(ledger_config) == []


def _fields(lines: list[bytes], kind: str) -> list[list[str]]:
    return [fields for line in lines if (fields := line.decode().split())[0] == kind]
