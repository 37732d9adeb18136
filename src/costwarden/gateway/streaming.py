"""Relaying a streamed answer: bytes pass through as they arrive; usage is picked up on the way.

The tracker reads the SSE stream for the usage chunk (and the text, in case the stream is cut or
carries no usage). The record is appended to the ledger *before* the chunk that ends the stream
is forwarded, so a client that saw the end of its answer is always on record. A client that goes
away mid-stream stops the upstream call at once and is billed for what was generated.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import aiohttp
import orjson

from costwarden.gateway.asgi import Receive, Send
from costwarden.gateway.outcome import Flight, conclude, id_headers
from costwarden.gateway.upstream import CallSpec, UpstreamResult
from costwarden.providers.base import MESSAGES, StreamTracker
from costwarden.providers.registry import adapter_for
from costwarden.records import Status, TokenUsage, UsageRecord
from costwarden.savings.answers import StreamAssembler

if TYPE_CHECKING:
    from costwarden.gateway.services import Services


class StreamRelay:
    def __init__(self, services: Services) -> None:
        self._s = services

    async def relay(
        self, flight: Flight, result: UpstreamResult, receive: Receive, send: Send
    ) -> None:
        record, api = flight.record, flight.spec.api
        response = result.response
        assert response is not None
        tracker = adapter_for(result.target.endpoint.provider).stream_tracker(api)
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, gone, response))
        started = time.perf_counter() - result.attempt.latency_ms / 1000
        await send(
            {
                "type": "http.response.start",
                "status": result.status,
                "headers": [*id_headers(record), *flight.headers, *result.headers],
            }
        )
        recorded = False
        ex = flight.exchange
        assembler = StreamAssembler(api) if ex is not None and ex.keep_answer else None
        try:
            async for chunk in response.content.iter_any():
                tracker.feed(chunk)
                if assembler is not None:
                    assembler.feed(chunk)
                if tracker.finished and not recorded:
                    self._record(flight, result, tracker, started, Status.OK)
                    recorded = True
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (aiohttp.ClientError, TimeoutError, OSError):
            pass  # a cut (or our own close after a disconnect): classified below
        finally:
            watcher.cancel()
            response.close()
        if recorded and assembler is not None and ex is not None:
            ex.answer = assembler.answer()
        if not recorded:
            status = Status.CLIENT_DISCONNECT if gone.is_set() else Status.STREAM_CUT
            self._record(flight, result, tracker, started, status)
            if status is Status.STREAM_CUT:
                with contextlib.suppress(OSError):
                    cut = _cut_event(api)
                    await send({"type": "http.response.body", "body": cut, "more_body": True})
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _record(
        self,
        flight: Flight,
        result: UpstreamResult,
        tracker: StreamTracker,
        started: float,
        status: Status,
    ) -> None:
        record = flight.record
        attempt = result.attempt
        attempt.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        attempt.reported_model = tracker.reported_model
        attempt.usage = self._usage(flight.spec, record, tracker, status)
        target = result.target
        price = self._s.prices.price_for(target.model, target.endpoint, record.created_at)
        attempt.cost = price.cost(attempt.usage) if price is not None else None
        if status is not Status.OK:
            attempt.error = status.value
            record.error_type = status.value
        http_status = 200 if status is Status.OK else 499
        conclude(self._s, record, flight.t0, status, http_status, exchange=flight.exchange)

    def _usage(
        self, spec: CallSpec, record: UsageRecord, tracker: StreamTracker, status: Status
    ) -> TokenUsage:
        reported = tracker.usage
        if status is Status.OK and reported is not None:
            return reported
        # Cut, abandoned, or no usage chunk: count what we saw. Upstream's own numbers win
        # where it gave them (Anthropic reports input tokens up front).
        model = record.resolved_model or record.requested_model
        counted_out = self._s.tokens.count(model, tracker.text) if tracker.text else 0
        if reported is None:
            return TokenUsage(
                input_tokens=self._s.tokens.estimate_request(spec.api, model, spec.body),
                output_tokens=counted_out,
                estimated=True,
            )
        return TokenUsage(
            input_tokens=reported.input_tokens,
            output_tokens=max(reported.output_tokens, counted_out),
            cache_read_tokens=reported.cache_read_tokens,
            cache_write_tokens=reported.cache_write_tokens,
            reasoning_tokens=reported.reasoning_tokens,
            estimated=True,
        )


async def _watch_disconnect(
    receive: Receive, gone: asyncio.Event, response: aiohttp.ClientResponse
) -> None:
    """Wait for the client to go away; then stop the upstream call so it stops generating."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            response.close()
            return


def _cut_event(api: str) -> bytes:
    """An in-band error event so SDKs raise instead of treating a cut stream as complete."""
    message = "upstream stream ended before completion"
    if api == MESSAGES:
        body = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"
    body2 = {"error": {"message": message, "type": "upstream_error", "code": "stream_cut"}}
    return b"data: " + orjson.dumps(body2) + b"\n\n"
