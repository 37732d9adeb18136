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


class SSEEvent(NamedTuple):
    event: str  # "" when the event had no ``event:`` line
    data: bytes


class SSEParser:
    __slots__ = ("_data", "_event", "_tail")

    def __init__(self) -> None:
        self._tail = b""
        self._data: list[bytes] = []
        self._event = ""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._tail + chunk if self._tail else chunk
        held_cr = buffer.endswith(b"\r")  # may be the first half of a CRLF split across chunks
        if held_cr:
            buffer = buffer[:-1]
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._tail = lines.pop() + (b"\r" if held_cr else b"")
        events: list[SSEEvent] = []
        for line in lines:
            if line:
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
