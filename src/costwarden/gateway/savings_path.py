"""The pipeline's side of the savings stages: serving a stage's reply (a cache hit), running a
stage's executor (a cascade) through priced unary calls, and handing the answer back after.

Kept out of ``pipeline`` so that a gateway without savings stages runs exactly the code it
ran before them: the pipeline only branches here when a stage asked it to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

from costwarden.gateway.asgi import JSON_HEADERS, Scope, Send, send_bytes
from costwarden.gateway.outcome import Flight, id_headers
from costwarden.gateway.services import Services
from costwarden.gateway.upstream import CallSpec, UpstreamResult
from costwarden.gateway.validation import RequestInfo
from costwarden.records import Status, UsageRecord
from costwarden.savings.answers import replay_stream
from costwarden.savings.stages import Exchange, Executor, Reply, UnaryResult

log = logging.getLogger("costwarden.gateway")

_SSE_HEADERS = ((b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"))
_STAGE_HEADER_PREFIX = b"x-costwarden-"

Finish = Callable[[UsageRecord, float, Status, int, "Exchange | None"], None]
PriceUnary = Callable[[CallSpec, UpstreamResult, UsageRecord, bytes], "dict[str, Any] | None"]


def new_exchange(
    api: str, payload: dict[str, Any], info: RequestInfo, record: UsageRecord, scope: Scope
) -> Exchange:
    headers = {k: v for k, v in scope["headers"] if k.startswith(_STAGE_HEADER_PREFIX)}
    return Exchange(api, payload, info.model, info.stream, record, headers)


class SavingsPath:
    def __init__(self, services: Services, finish: Finish, price_unary: PriceUnary) -> None:
        self._s = services
        self._stages = services.stages
        self._finish = finish
        self._price_unary = price_unary

    async def serve_reply(self, ex: Exchange, reply: Reply, t0: float, send: Send) -> None:
        """Answer from a stage (no upstream call): recorded with cost 0 and what it saved."""
        record = ex.record
        record.savings.append(reply.saving)
        self._finish(record, t0, Status.OK, 200, ex)
        headers = (*id_headers(record), *reply.headers)
        await self._respond(ex, 200, b"", reply.answer, headers=headers, send=send)

    async def execute(self, flight: Flight, executor: Executor, send: Send) -> None:
        """Let ``executor`` answer through unary calls; every call is an attempt of the record."""
        ex = flight.exchange
        assert ex is not None

        async def call(model: str, body: dict[str, Any]) -> UnaryResult:
            return await self._call_unary(flight, model, body)

        done = await executor.execute(ex, call)
        ok = done.status < 400
        record = flight.record
        if ok and ex.keep_answer:
            ex.answer = done.answer
        if not ok:
            record.error_type = "upstream_error"
            record.error_message = done.body[:500].decode("utf-8", "replace")
        self._finish(record, flight.t0, Status.OK if ok else Status.UPSTREAM_ERROR, done.status, ex)
        headers = (*id_headers(record), *flight.headers, *done.headers)
        answer = done.answer if ok else None
        await self._respond(ex, done.status, done.body, answer, headers=headers, send=send)

    async def _call_unary(self, flight: Flight, model: str, body: dict[str, Any]) -> UnaryResult:
        record = flight.record
        record.resolved_model = model  # the caller plans this model's endpoints and fallbacks
        sent = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        spec = CallSpec(flight.spec.api, sent, False, flight.spec.client_headers)
        result = await self._s.caller.call(spec, record, flight.t0)
        raw = result.body or b""
        answer = None
        if result.status < 400:
            answer = self._price_unary(spec, result, record, raw)
        else:
            result.attempt.error = "upstream_error"
        return UnaryResult(result.status, raw, answer, result.attempt)

    async def _respond(
        self,
        ex: Exchange,
        status: int,
        body: bytes,
        answer: dict[str, Any] | None,
        *,
        headers: tuple[tuple[bytes, bytes], ...],
        send: Send,
    ) -> None:
        if answer is None:
            await send_bytes(send, status, body, (*JSON_HEADERS, *headers))
            return
        if ex.stream:
            options = ex.payload.get("stream_options")
            usage = isinstance(options, dict) and bool(options.get("include_usage"))
            stream = replay_stream(ex.api, answer, include_usage=usage)
            await send_bytes(send, status, stream, (*_SSE_HEADERS, *headers))
        else:
            await send_bytes(send, status, orjson.dumps(answer), (*JSON_HEADERS, *headers))

    async def after(self, ex: Exchange) -> None:
        """The client has its answer: stages that asked for it see it (e.g. to cache it)."""
        if ex.answer is None:
            return
        try:
            await self._stages.on_answer(ex)
        except Exception:  # a cache write failing must never fail an answered request
            log.exception("savings stage failed after request %s", ex.record.request_id)
