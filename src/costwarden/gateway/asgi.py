"""The few raw-ASGI helpers the gateway needs.

The gateway speaks ASGI directly instead of through a framework: per request it needs only a
dict lookup for the route, the body bytes and a way to send bytes back, and every layer a
framework adds costs throughput on the proxy hot path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import orjson

from costwarden.errors import CostwardenError, MalformedJSON, PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADERS: tuple[tuple[bytes, bytes], ...] = ((b"content-type", b"application/json"),)
_MAX_DEPTH = 254  # the deepest nesting orjson.dumps writes


def header(scope: Scope, name: bytes) -> str | None:
    """First value of a request header (``name`` lower-case), decoded as latin-1."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def headers_dict(scope: Scope) -> dict[bytes, bytes]:
    return dict(scope["headers"])


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing anything over ``limit`` bytes early."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise MalformedJSON("request body is empty; expected a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedJSON("request body must be a JSON object")
    try:
        # orjson reads 1024 levels but writes only 254, and every body is written again (to
        # the upstream, the cache key, the batch queue): refuse here what cannot be, instead
        # of failing later as our error. Re-serialising costs ~1 µs for a 2 KB body.
        orjson.dumps(data)
    except orjson.JSONEncodeError:
        raise MalformedJSON(f"request body nests JSON deeper than {_MAX_DEPTH} levels") from None
    return data


class ClientGone(Exception):
    """The client disconnected before the request completed."""


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    headers: Iterable[tuple[bytes, bytes]] = JSON_HEADERS,
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send,
    status: int,
    data: Any,
    extra_headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    await send_bytes(send, status, orjson.dumps(data), (*JSON_HEADERS, *extra_headers))


async def send_error(
    send: Send,
    error: CostwardenError,
    *,
    anthropic: bool = False,
    extra_headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    body = error.to_anthropic() if anthropic else error.to_openai()
    hdrs = [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send_json(send, error.http_status, body, (*hdrs, *extra_headers))
