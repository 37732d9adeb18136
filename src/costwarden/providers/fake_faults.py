"""Sending the fake upstream's replies, and the faults a real upstream's replies can have.

Faults, per request through the same knobs as the rest (see ``fake_upstream``):
    cut_after=N        close the connection after N content chunks (a stream) or after half
                       the body (a unary answer): an incomplete body, then FIN
    reset=headers      reset the connection (RST) before sending anything: what a crashed
                       provider or a load balancer dropping a backend looks like
    reset=body         reset after the headers and part of the body (after ``cut_after``
                       content chunks for a stream, 0 by default)
    malformed=1        unary: a 200 whose body is not JSON (the answer's JSON, truncated);
                       stream: junk among the events (bad JSON, lines with no field name,
                       JSON that is not an object, data on an unnamed event)
    retry_after=S      a ``retry-after: S`` header on an error answer
    flaky=N&flaky_id=X the first N requests carrying ``flaky_id`` X answer ``flaky_status``
                       (503), later ones succeed: 5xx-then-success, as retries see it
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from costwarden.providers.fake_common import Knobs, StreamPlan

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

# Events a broken upstream or proxy might put in a stream: none is a valid chunk, and a
# gateway must pass them on without losing the valid ones around them.
JUNK_EVENTS = (
    b"data: {not json\n\n",
    b"this line has no field name\n\n",
    b"data: [1, 2, 3]\n\n",
    b"event: \ndata: null\n\n",
    b'data: {"choices": "not a list", "delta": 7}\n\n',
    b"event: content_block_delta\ndata: {broken\n\n",
)
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, not FIN


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes = b""
    stream: StreamPlan | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class FlakyCounter:
    """How many requests of each ``flaky_id`` were seen (bounded, oldest ids forgotten)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._capacity = capacity

    def should_fail(self, knobs: Knobs) -> bool:
        if not knobs.flaky or knobs.flaky_id is None:
            return False
        count = self._seen.get(knobs.flaky_id, 0) + 1
        self._seen[knobs.flaky_id] = count
        self._seen.move_to_end(knobs.flaky_id)
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return count <= knobs.flaky


def error_headers(knobs: Knobs) -> list[tuple[bytes, bytes]]:
    if knobs.retry_after is None:
        return []
    return [(b"retry-after", f"{knobs.retry_after:g}".encode())]


def reset_connection(send: Send) -> None:
    """Drop the connection with a TCP RST. Needs uvicorn's httptools cycle (its ``send`` is a
    bound method holding the transport); ASGI itself has no way to say "reset"."""
    cycle = getattr(send, "__self__", None)
    transport: asyncio.Transport | None = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("reset needs the fake upstream running on uvicorn's httptools")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    transport.abort()


async def send_reply(send: Send, reply: Reply, knobs: Knobs) -> None:
    ok = reply.status == 200
    if ok and knobs.reset == "headers":
        reset_connection(send)
        return
    if reply.stream is None:
        await _send_unary(send, reply, knobs if ok else Knobs())
    else:
        await _send_stream(send, reply.headers, reply.stream, knobs)


async def _send_unary(send: Send, reply: Reply, knobs: Knobs) -> None:
    body = reply.body[:-1] if knobs.malformed else reply.body  # "}" missing: not JSON
    headers = [*reply.headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    if knobs.cut_after is None and knobs.reset is None:
        await send({"type": "http.response.body", "body": body})
        return
    half = {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
    await send(half)
    if knobs.reset == "body":
        await asyncio.sleep(0.01)  # let the half reach the client before the RST
        reset_connection(send)
    # Returning mid-body: uvicorn drops the connection, a real cut.


async def _send_stream(
    send: Send, headers: list[tuple[bytes, bytes]], plan: StreamPlan, knobs: Knobs
) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    cut = knobs.cut_after is not None or knobs.reset == "body"
    content = plan.content[: knobs.cut_after or 0] if cut else plan.content
    if knobs.malformed:
        content = (*content[:1], *JUNK_EVENTS, *content[1:])
    events = (*plan.head, *content, *(() if cut else plan.tail))
    if knobs.chunk_delay_ms:
        for event in events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
            await asyncio.sleep(knobs.chunk_delay_ms / 1000)
    else:
        await send({"type": "http.response.body", "body": b"".join(events), "more_body": True})
    if knobs.reset == "body":
        await asyncio.sleep(0.01)
        reset_connection(send)
    elif not cut:
        await send({"type": "http.response.body", "body": b""})
