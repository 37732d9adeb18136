"""Incremental Server-Sent Events parser for streams passing through the gateway.

Bytes arrive in arbitrary pieces: a line, an event or even a CRLF pair can be split across
chunks. The parser keeps the unfinished tail and returns only complete events, following the
WHATWG rules that matter here: LF, CRLF and lone CR end a line; ``data:`` lines of one event are
joined with LF; a blank line dispatches; ``:`` lines are comments; one space after the colon is
dropped. Event data stays ``bytes`` because the consumers hand it straight to orjson.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

_COLON = 58  # ord(":")
_LF = 10  # ord("\n")


class SSEEvent(NamedTuple):
    event: str  # "" when the event had no ``event:`` line
    data: bytes


class SSEParser:
    __slots__ = ("_data", "_event", "_skip_lf", "_tail")

    def __init__(self) -> None:
        self._tail = b""
        self._data: list[bytes] = []
        self._event = ""
        self._skip_lf = False  # the last chunk ended in CR: a leading LF completes that CRLF

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == _LF:
                chunk = chunk[1:]
        buffer = self._tail + chunk if self._tail else chunk
        if b"\r" in buffer:
            self._skip_lf = buffer.endswith(b"\r")
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._tail = lines.pop()
        events: list[SSEEvent] = []
        for line in lines:
            if line[:6] == b"data: ":  # the common line, handled inline
                self._data.append(line[6:])
            elif line:
                self._take_line(line)
            elif self._data:
                events.append(SSEEvent(self._event, b"\n".join(self._data)))
                self._data = []
                self._event = ""
            else:
                self._event = ""  # an event without data is not dispatched
        return events

    def _take_line(self, line: bytes) -> None:
        if line[0] == _COLON:
            return
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")


class DeferredText:
    """Generated text whose extraction is put off until someone asks for it.

    The gateway needs the text only when a stream is cut or carries no usage, so the raw event
    payloads are kept and decoded on demand. Pending payloads are resolved early once they pass
    ``max_pending_bytes`` so memory per stream stays bounded on long generations.
    """

    __slots__ = ("_done", "_extract", "_max_pending", "_pending", "_pending_bytes")

    def __init__(self, extract: Callable[[bytes], str], max_pending_bytes: int = 64 * 1024):
        self._extract = extract
        self._max_pending = max_pending_bytes
        self._done: list[str] = []
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def add_raw(self, payload: bytes) -> None:
        self._pending.append(payload)
        self._pending_bytes += len(payload)
        if self._pending_bytes > self._max_pending:
            self._resolve()

    def add_text(self, text: str) -> None:
        """Text already extracted by the caller; earlier raw payloads come first."""
        if text:
            self._resolve()
            self._done.append(text)

    @property
    def text(self) -> str:
        self._resolve()
        joined = "".join(self._done)
        self._done = [joined]
        return joined

    def _resolve(self) -> None:
        if self._pending:
            self._done.extend(map(self._extract, self._pending))
            self._pending = []
            self._pending_bytes = 0
