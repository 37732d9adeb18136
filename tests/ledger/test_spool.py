"""Spool files: one write per record, rotation, torn lines, and who may claim a segment."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from costwarden.ledger.rows import encode_record
from costwarden.ledger.spool import LedgerClosedError, Spool
from tests.ledger.factory import make_record


def _lines(count: int, start: int = 0) -> list[bytes]:
    return [b'{"n": %d}\n' % i for i in range(start, start + count)]


def test_append_then_read_back_in_batches(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path)
    for line in _lines(5):
        spool.append(line)
    (segment,) = spool.segments
    first = spool.read(segment, max_lines=3)
    assert first.lines == [line.rstrip(b"\n") for line in _lines(3)]
    assert first.next_offset == sum(len(line) for line in _lines(3))
    segment.ingested = first.next_offset
    rest = spool.read(segment, max_lines=100)
    assert rest.lines == [line.rstrip(b"\n") for line in _lines(2, start=3)]
    assert rest.next_offset == segment.end == os.path.getsize(segment.path)
    spool.release()


def test_a_record_is_one_json_line_equal_to_to_dict() -> None:
    record = make_record(3)
    line = encode_record(record)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert orjson.loads(line) == orjson.loads(orjson.dumps(record.to_dict()))


def test_segments_rotate_by_size(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, max_segment_bytes=30)
    for line in _lines(10):
        spool.append(line)
    assert len(spool.segments) > 2
    assert all(s.sealed for s in spool.segments[:-1]) and not spool.segments[-1].sealed
    names = [s.name for s in spool.segments]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    stored = b"".join(s.path.read_bytes() for s in spool.segments)
    assert stored == b"".join(_lines(10))
    spool.release()


def test_torn_tail_of_a_sealed_segment_is_returned_last(tmp_path: Path) -> None:
    path = tmp_path / "seg-1-2-dead-000000.spool"
    path.write_bytes(b"".join(_lines(2)) + b'{"n": 2, "tor')
    spool = Spool.create(tmp_path)
    (segment,) = spool.claim_orphans()
    batch = spool.read(segment, max_lines=100)
    assert batch.lines[-1] == b'{"n": 2, "tor'
    assert len(batch.lines) == 3 and batch.next_offset == segment.end
    spool.release()


def test_incomplete_line_of_a_live_segment_is_not_read(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path)
    (segment,) = spool.segments
    spool.append(b'{"n": 0}\n')
    os.write(segment.fd, b'{"n": 1')  # as if a write were still under way
    segment.end += 7
    batch = spool.read(segment, max_lines=100)
    assert batch.lines == [b'{"n": 0}'] and batch.next_offset == 9
    spool.release()


def test_a_live_processs_segment_is_never_claimed(tmp_path: Path) -> None:
    owner = Spool.create(tmp_path)
    owner.append(b'{"n": 0}\n')
    other = Spool.create(tmp_path)
    assert other.claim_orphans() == []
    owner.release()  # the owner dies: its lock goes, the file stays
    (claimed,) = other.claim_orphans()
    assert claimed.sealed and claimed.end == 9
    assert Spool.create(tmp_path).claim_orphans() == []  # now held by `other`
    other.release()


def test_discard_deletes_the_file(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path)
    spool.append(b'{"n": 0}\n')
    spool.seal()
    (segment,) = spool.segments
    spool.discard(segment)
    assert spool.segments == [] and not segment.path.exists()


def test_stale_temp_file_of_a_dead_creator_is_removed(tmp_path: Path) -> None:
    stale = tmp_path / ".seg-1-2-dead-000000.spool.tmp"
    stale.write_bytes(b"")
    spool = Spool.create(tmp_path)
    assert spool.claim_orphans() == []
    assert not stale.exists()
    spool.release()


def test_append_after_seal_is_refused(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path)
    spool.seal()
    with pytest.raises(LedgerClosedError):
        spool.append(b'{"n": 0}\n')
    spool.release()


async def test_sync_flushes_dirty_segments(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path)
    spool.append(b'{"n": 0}\n')
    assert spool.segments[0].dirty
    await spool.sync()
    assert not spool.segments[0].dirty
    spool.release()
