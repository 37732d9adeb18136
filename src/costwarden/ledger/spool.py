"""The durable spool: append-only segment files that hold records until the store has them.

Durability model
----------------
* ``append`` is one ``os.write`` of one newline-terminated JSON line to a file opened with
  ``O_APPEND``. Once it returns, the bytes are in the kernel's page cache: they survive the
  process being killed (``kill -9``, OOM, crash) because the kernel, not the process, owns them.
* A power failure or kernel crash can lose what was written since the last ``fsync``.
  ``sync()`` (run every ``LedgerConfig.fsync_interval_s`` by the ledger) bounds that window.
* A partial write (disk full) or a power failure can leave a torn last line; readers skip a
  line that does not decode instead of failing.

Sharing a directory between processes
-------------------------------------
Every process writes only its own segments, named ``seg-<pid>-<start ns>-<random>-<seq>.spool``,
so writes never interleave. A process holds an exclusive ``flock`` on each segment it owns for
as long as the segment exists (it is created under a temporary name, locked, then renamed, so
it is never visible unlocked). At start-up, and from time to time after, a process claims the
segments of dead processes: a non-blocking ``flock`` succeeds only when no live process holds
the file. Segments rotate by size; a segment is deleted once all of it is in the store
(except a closing ledger's last one when requests were still in flight: see ``writer.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_SEGMENT_BYTES = 16 * 1024 * 1024
_READ_CHUNK_BYTES = 1024 * 1024
_SUFFIX = ".spool"
_TMP_SUFFIX = ".tmp"
# fdatasync skips metadata the data does not need; fall back where it does not exist.
_datasync = getattr(os, "fdatasync", os.fsync)


class LedgerClosedError(RuntimeError):
    """The ledger (or its spool) was closed; nothing more can be appended."""


@dataclass(eq=False, slots=True)
class Segment:
    """One spool file held (and flock-ed) by this process."""

    name: str
    path: Path
    fd: int
    end: int  # bytes that hold complete appends (own) or the file size (claimed)
    ingested: int = 0  # bytes already copied into the store (the checkpoint)
    sealed: bool = False  # no more appends will come
    dirty: bool = False  # written since the last fsync
    adopted: bool = False  # claimed from a dead writer (not written by this process)
    retain: bool = False  # keep the file once drained: a later process must see it

    @property
    def drained(self) -> bool:
        return self.ingested >= self.end

    @property
    def writer(self) -> str:
        """The id of the spool writer (process) that wrote this segment."""
        return writer_of(self.name)


def writer_of(segment_name: str) -> str:
    """``seg-<writer id>-<seq>.spool`` → writer id."""
    return segment_name.removeprefix("seg-").removesuffix(_SUFFIX).rsplit("-", 1)[0]


@dataclass(frozen=True, slots=True)
class SpoolBatch:
    lines: list[bytes]  # raw lines, newline removed; may include a torn last line
    next_offset: int  # checkpoint to record once these lines are stored


def _lock_or_none(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class Spool:
    """This process's spool segments (its own, plus any claimed from dead processes)."""

    def __init__(self, directory: Path, max_segment_bytes: int) -> None:
        self._dir = directory
        self._max_segment_bytes = max_segment_bytes
        self.writer_id = f"{os.getpid()}-{time.time_ns()}-{secrets.token_hex(4)}"
        self._own_prefix = f"seg-{self.writer_id}-"
        self._next_seq = 0
        self._dir_dirty = False
        self.segments: list[Segment] = []  # oldest first
        self._current: Segment | None = None

    @classmethod
    def create(cls, directory: Path, max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES) -> Spool:
        directory.mkdir(parents=True, exist_ok=True)
        spool = cls(directory, max_segment_bytes)
        spool._current = spool._new_segment()
        return spool

    # -- writing (hot path) --------------------------------------------------------------
    def append(self, line: bytes) -> None:
        """Write one newline-terminated line with one ``os.write``.

        Raises ``LedgerClosedError`` after ``seal()`` and ``OSError`` when the disk refuses the
        write; the record is then not in the spool and the caller must treat it as not stored.
        """
        segment = self._current
        if segment is None:
            raise LedgerClosedError("the ledger is closed")
        if segment.end >= self._max_segment_bytes:
            segment = self._rotate()
        written = os.write(segment.fd, line)
        segment.end += written
        segment.dirty = True
        if written != len(line):
            self._finish_short_write(segment, line, written)

    def _finish_short_write(self, segment: Segment, line: bytes, written: int) -> None:
        # A regular file writes short only when the disk is (nearly) full. Finish the line if
        # the disk lets us; otherwise seal the segment so its torn tail is never followed by
        # another record (readers skip the torn line), and report the failure.
        try:
            while written < len(line):
                step = os.write(segment.fd, line[written:])
                written += step
                segment.end += step
        except OSError:
            segment.sealed = True
            self._current = self._new_segment()
            raise

    def _rotate(self) -> Segment:
        assert self._current is not None
        self._current.sealed = True
        self._current = self._new_segment()
        return self._current

    def _new_segment(self) -> Segment:
        while True:
            name = f"{self._own_prefix}{self._next_seq:06d}{_SUFFIX}"
            self._next_seq += 1
            path = self._dir / name
            tmp = self._dir / f".{name}{_TMP_SUFFIX}"
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)  # fresh file: nobody else can hold it yet
            try:
                os.rename(tmp, path)
            except FileNotFoundError:
                # Another process's clean-up removed the empty temp file before we locked it.
                os.close(fd)
                continue
            segment = Segment(name=name, path=path, fd=fd, end=0)
            self.segments.append(segment)
            self._dir_dirty = True
            return segment

    def seal(self, *, retain: bool = False) -> None:
        """Stop appending: the current segment becomes final (and deletable once drained,
        unless ``retain``: then it stays for a later process to adopt)."""
        if self._current is not None:
            self._current.sealed = True
            self._current.retain = retain
            self._current = None

    # -- durability ----------------------------------------------------------------------
    async def sync(self) -> None:
        """fsync segments written since the last sync (and the directory after new files)."""
        for segment in list(self.segments):
            if not segment.dirty or segment.fd < 0:
                continue
            segment.dirty = False
            # A duplicate descriptor keeps the file open even if the segment is discarded
            # while the worker thread is still syncing it.
            fd = os.dup(segment.fd)
            try:
                await asyncio.to_thread(_datasync, fd)
            finally:
                os.close(fd)
        if self._dir_dirty:
            self._dir_dirty = False
            dir_fd = os.open(self._dir, os.O_RDONLY)
            try:
                await asyncio.to_thread(os.fsync, dir_fd)
            finally:
                os.close(dir_fd)

    # -- reading -------------------------------------------------------------------------
    def read(self, segment: Segment, max_lines: int) -> SpoolBatch:
        """Up to ``max_lines`` complete lines after ``segment.ingested``.

        A sealed segment's unterminated tail (a torn write) is returned as a last line so
        that the caller can try it; the batch then ends at the end of the file.
        """
        start = segment.ingested
        want = min(segment.end - start, _READ_CHUNK_BYTES)
        data = os.pread(segment.fd, want, start)
        while b"\n" not in data and start + len(data) < segment.end:  # a line over 1 MiB
            want *= 2
            data = os.pread(segment.fd, want, start)
        lines = data.split(b"\n")
        tail = lines.pop()  # bytes after the last newline (empty when data ends with one)
        if len(lines) > max_lines:
            lines = lines[:max_lines]
            return SpoolBatch(lines, start + sum(len(line) + 1 for line in lines))
        offset = start + len(data) - len(tail)
        if tail and segment.sealed and offset + len(tail) == segment.end:
            lines.append(tail)
            offset = segment.end
        return SpoolBatch(lines, offset)

    # -- segments of dead processes ------------------------------------------------------
    def claim_orphans(self) -> list[Segment]:
        """Lock and adopt the segments no live process holds; drop stale empty temp files."""
        held = {segment.name for segment in self.segments}
        claimed = []
        for path in sorted(self._dir.iterdir()):
            name = path.name
            if name in held or name.startswith((self._own_prefix, f".{self._own_prefix}")):
                continue
            if name.startswith(".seg-") and name.endswith(_TMP_SUFFIX):
                self._remove_stale_temp(path)
            elif name.startswith("seg-") and name.endswith(_SUFFIX):
                segment = self._claim(path)
                if segment is not None:
                    claimed.append(segment)
        self.segments.extend(claimed)
        return claimed

    def _claim(self, path: Path) -> Segment | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        if not _lock_or_none(fd) or not self._still_linked(path, fd):
            os.close(fd)
            return None
        size = os.fstat(fd).st_size
        return Segment(name=path.name, path=path, fd=fd, end=size, sealed=True, adopted=True)

    @staticmethod
    def _still_linked(path: Path, fd: int) -> bool:
        # Another process may have finished and deleted the file between our open and lock.
        try:
            return os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def _remove_stale_temp(self, path: Path) -> None:
        segment = self._claim(path)
        if segment is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            os.close(segment.fd)

    # -- clean-up ------------------------------------------------------------------------
    def discard(self, segment: Segment) -> None:
        """Delete a segment whose content is all in the store, and release its lock."""
        with contextlib.suppress(FileNotFoundError):
            segment.path.unlink()
        os.close(segment.fd)
        segment.fd = -1
        self.segments.remove(segment)
        self._dir_dirty = True

    def release(self) -> None:
        """Close every segment without deleting it (their locks go; another start replays)."""
        self.seal()
        for segment in self.segments:
            os.close(segment.fd)
            segment.fd = -1
        self.segments.clear()
