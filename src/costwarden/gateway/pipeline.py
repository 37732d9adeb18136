"""The proxy request pipeline: auth → validate → resolve → call → price → record → respond.

One ``UsageRecord`` is created once the caller is known and completed as the request moves;
it is appended to the ledger exactly once, *before* the client sees the end of the answer, so
an answered request is always on record even if the gateway dies a moment later.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from costwarden.config import ModelConfig
from costwarden.errors import (
    AuthenticationError,
    CostwardenError,
    InvalidRequest,
    LedgerUnavailable,
    UnknownModel,
    UpstreamMalformed,
)
from costwarden.gateway.asgi import (
    ClientGone,
    Receive,
    Scope,
    Send,
    header,
    parse_json_object,
    read_body,
    send_bytes,
    send_error,
)
from costwarden.gateway.outcome import Flight, conclude, id_headers, mark_error
from costwarden.gateway.savings_path import SavingsPath, new_exchange
from costwarden.gateway.services import Services
from costwarden.gateway.streaming import StreamRelay
from costwarden.gateway.unary_usage import UnaryPricer
from costwarden.gateway.upstream import CallSpec, UpstreamResult
from costwarden.gateway.validation import RequestInfo, validate
from costwarden.policy.engine import Admission
from costwarden.policy.pinning import ModelResolution
from costwarden.providers.base import MESSAGES
from costwarden.providers.registry import adapter_for
from costwarden.records import (
    Principal,
    RequestIds,
    Status,
    Tags,
    UsageRecord,
    utcnow,
)
from costwarden.savings.stages import EXTENSION_FIELD, Exchange

if TYPE_CHECKING:
    from costwarden.batch.gateway_route import BatchIntake

log = logging.getLogger("costwarden.gateway")


@dataclass(slots=True)
class _Held:
    """What a request has acquired so far, for the handlers that must clean up after it."""

    t0: float  # perf_counter() at arrival
    record: UsageRecord | None = None
    resolution: ModelResolution | None = None
    admission: Admission | None = None
    exchange: Exchange | None = None  # only when savings stages are configured


# Client headers forwarded to an upstream of the matching protocol.
_FORWARDED = {MESSAGES: (b"anthropic-version", b"anthropic-beta")}


class ProxyPipeline:
    def __init__(self, services: Services, batch: BatchIntake | None = None) -> None:
        self._s = services
        self._batch = batch  # low-priority requests go to the batch queue (batch/)
        self._limit = services.settings.gateway.max_body_bytes
        self._reject_unpriced = services.settings.gateway.unknown_model_pricing == "reject"
        self._relay = StreamRelay(services)
        self._pricer = UnaryPricer(services.prices, services.tokens)
        self._ids = RequestIds()
        self._admitter = services.admitter()
        self._stages = services.stages
        self._savings = SavingsPath(services, self._finish, self.price_unary)

    async def handle(self, api: str, scope: Scope, receive: Receive, send: Send) -> None:
        held = _Held(time.perf_counter())
        t0 = held.t0
        try:
            await self._proceed(api, scope, receive, send, held)
        except ClientGone:
            self._finish_once(held, Status.CLIENT_DISCONNECT, 499)
        except CostwardenError as exc:
            if held.record is not None and held.record.finished_at is None:
                mark_error(held.record, exc)
                self._finish(held.record, t0, held.record.status, exc.http_status, held.exchange)
            elif held.record is None:  # refused before it had a record (bad key, bad body)
                self._s.refused(exc.code)
            await send_error(
                send, exc, anthropic=api == MESSAGES, extra_headers=id_headers(held.record)
            )
        except Exception:
            # A bug of ours: still keep the one-record promise, and answer instead of hanging.
            log.exception("unhandled error in %s request", api)
            if held.record is not None and held.record.finished_at is None:
                held.record.error_type = "gateway_error"
            self._finish_once(held, Status.GATEWAY_ERROR, 500)
            await send_error(
                send, CostwardenError("internal gateway error"), anthropic=api == MESSAGES
            )
        finally:
            await self._after(held)

    async def _proceed(
        self, api: str, scope: Scope, receive: Receive, send: Send, held: _Held
    ) -> None:
        t0 = held.t0
        principal = await self._authenticate(scope)
        body = await read_body(scope, receive, self._limit)
        payload = parse_json_object(body)
        info = validate(api, payload)
        if self._batch is not None and self._batch.wants(scope):  # answered 202, sent later
            await self._batch.enqueue(
                api, scope, send, principal=principal, payload=payload, info=info
            )
            return
        held.record = record = _new_record(self._ids(), api, info, principal, scope)
        model, reply = info.model, None
        also: tuple[str, ...] = ()
        if self._stages.wants(record.tags.feature):
            held.exchange = ex = new_exchange(api, payload, info, record, scope)
            reply = await self._stages.on_request(ex)
            model, payload, also = ex.model, ex.payload, ex.also_reserve
        if EXTENSION_FIELD in payload:  # a stage takes it out; left in, it would reach upstream
            raise InvalidRequest(
                f"the '{EXTENSION_FIELD}' request field needs savings.trimming enabled on this "
                "gateway (chat completions and messages only)",
                param=EXTENSION_FIELD,
            )
        held.resolution = self._s.policy.resolve_model(model, record.tags.env)
        self._resolve(api, record, held.resolution.model)
        if reply is not None and held.exchange is not None:
            await self._savings.serve_reply(held.exchange, reply, t0, send)
            return
        headers: tuple[tuple[bytes, bytes], ...] = ()
        admitter = self._admitter
        if admitter.active:
            if held.exchange is not None:  # reserve for the body as the stages left it
                body = orjson.dumps(payload)
            admission = await admitter.reserve(
                api, payload, body, record, info.max_output_tokens, slot=held, also=also
            )
            headers = admission.header_pairs
        spec = CallSpec(api, payload, info.stream, _forwarded_headers(api, scope))
        flight = Flight(spec, record, t0, headers, held.exchange)
        self._append_pending(record)
        if flight.exchange is not None and flight.exchange.executor is not None:
            await self._savings.execute(flight, flight.exchange.executor, send)
            return
        result = await self._s.caller.call(spec, record, t0)
        if result.response is not None:
            await self._relay.relay(flight, result, receive, send)
        else:
            await self._respond_unary(flight, result, send)

    def _append_pending(self, record: UsageRecord) -> None:
        """Mark the request in flight before any upstream sees it: if this process dies now,
        the next start records it as interrupted instead of losing it."""
        try:
            self._s.ledger.append_pending(record)
        except OSError as exc:
            raise LedgerUnavailable(
                "the gateway cannot record requests right now (spool write failed); "
                "refusing rather than serving unrecorded traffic"
            ) from exc

    async def _after(self, held: _Held) -> None:
        """Settle the reservation and check the pin, once the record is final."""
        record = held.record
        if held.admission is not None and record is not None:
            if record.attempts:
                self._admitter.settle(held.admission, record)
            else:  # it never reached an upstream: nothing was spent
                await self._admitter.release(held.admission)
        if held.resolution is not None and record is not None and record.reported_model:
            self._s.policy.check_reported_model(held.resolution, record.reported_model)
        if held.exchange is not None:
            await self._savings.after(held.exchange)

    def _finish_once(self, held: _Held, status: Status, http_status: int) -> None:
        record = held.record
        if record is not None and record.finished_at is None:
            self._finish(record, held.t0, status, http_status, held.exchange)

    async def _authenticate(self, scope: Scope) -> Principal:
        key = _bearer(header(scope, b"authorization")) or header(scope, b"x-api-key")
        if not key:
            raise AuthenticationError(
                "missing API key: send 'Authorization: Bearer <costwarden key>' or 'x-api-key'"
            )
        principal = await self._s.keys.authenticate(key)
        if principal is None:
            raise AuthenticationError("invalid or revoked API key")
        return principal

    def _resolve(self, api: str, record: UsageRecord, name: str) -> ModelConfig:
        """The configured model ``name``; only then is it the record's resolved model (and
        echoed in ``x-costwarden-model``): an unknown name is the client's text, not ours."""
        model = self._s.settings.model(name)
        if model is None:
            raise UnknownModel(f"model '{name}' is not configured on this gateway", param="model")
        provider = model.endpoints[0].provider
        if api not in adapter_for(provider).apis:
            raise InvalidRequest(
                f"model '{name}' is served over the {provider} protocol, which does not offer "
                f"the {api} API",
                param="model",
            )
        if self._reject_unpriced:
            now = record.created_at
            if self._s.prices.price_for(model, model.endpoints[0], now) is None:
                raise UnknownModel(
                    f"no price is known for model '{name}'; configure its pricing "
                    "(or set gateway.unknown_model_pricing: record_unknown)",
                    param="model",
                )
        record.resolved_model = model.name
        return model

    async def _respond_unary(self, flight: Flight, result: UpstreamResult, send: Send) -> None:
        record, t0 = flight.record, flight.t0
        body = result.body or b""
        ex = flight.exchange
        if result.status >= 400:
            record.error_type = "upstream_error"
            record.error_message = body[:500].decode("utf-8", "replace")
            self._finish(record, t0, Status.UPSTREAM_ERROR, result.status, ex)
        else:
            answer = self.price_unary(flight.spec, result, record, body)
            if answer is None:  # a "success" no client could read
                await self._refuse_malformed(flight, result, send)
                return
            if ex is not None and ex.keep_answer:
                ex.answer = answer
            self._finish(record, t0, Status.OK, result.status, ex)
        await send_bytes(
            send, result.status, body, (*id_headers(record), *flight.headers, *result.headers)
        )

    def price_unary(
        self, spec: CallSpec, result: UpstreamResult, record: UsageRecord, body: bytes
    ) -> dict[str, Any] | None:
        """Price the answering attempt from the body's usage (counted when it has none);
        returns the body's JSON object."""
        return self._pricer.price(spec, result.target, result.attempt, record, body)

    async def _refuse_malformed(self, flight: Flight, result: UpstreamResult, send: Send) -> None:
        """A 2xx whose body is not a JSON object: billed (upstream did the work, and the text
        in it is counted), recorded as an upstream error and answered 502. Not retried: the
        answer was paid for; a retry would pay again for what may be the same broken proxy."""
        record = flight.record
        error = UpstreamMalformed(
            f"upstream {result.target.endpoint.name} answered {result.status} with a body "
            "that is not a JSON object"
        )
        result.attempt.error = "malformed response body"
        record.error_type, record.error_message = error.code, error.message
        self._finish(record, flight.t0, Status.UPSTREAM_ERROR, error.http_status, flight.exchange)
        headers = (*id_headers(record), *flight.headers)
        await send_error(send, error, anthropic=flight.spec.api == MESSAGES, extra_headers=headers)

    def _finish(
        self,
        record: UsageRecord,
        t0: float,
        status: Status,
        http_status: int,
        exchange: Exchange | None = None,
    ) -> None:
        conclude(self._s, record, t0, status, http_status, exchange=exchange)


def _new_record(
    request_id: str, api: str, info: RequestInfo, principal: Principal, scope: Scope
) -> UsageRecord:
    return UsageRecord(
        request_id=request_id,
        created_at=utcnow(),
        api=api,
        requested_model=info.model,
        stream=info.stream,
        principal=principal,
        tags=Tags(
            feature=header(scope, b"x-costwarden-feature"),
            session=header(scope, b"x-costwarden-session"),
            env=header(scope, b"x-costwarden-env"),
            agent=header(scope, b"x-costwarden-agent"),
        ),
    )


def _bearer(value: str | None) -> str | None:
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return None


def _forwarded_headers(api: str, scope: Scope) -> dict[str, str]:
    names = _FORWARDED.get(api)
    if not names:
        return {}
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in names}
