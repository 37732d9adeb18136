"""One OpenTelemetry span per proxied request, per the GenAI semantic conventions.

The span is built from the finished ``UsageRecord`` — nothing is opened mid-pipeline — with
explicit start and end times: it ends when the record was finished and starts ``latency_ms``
before, so it covers the request from arrival to its ledger append. Building a span costs tens
of µs with the SDK, so ``observe`` only schedules it for the event loop's next turn
(``call_soon``, which keeps the request's context: a span an outer instrumentation opened for
the HTTP request becomes its parent); the answer's last bytes are not held up by it.

Name ``{gen_ai.operation.name} {gen_ai.request.model}`` (``chat gpt-4o-mini``), kind CLIENT;
attributes from https://opentelemetry.io/docs/specs/semconv/gen-ai/ (``gen_ai.provider.name``
and the older ``gen_ai.system`` both, as consumers still differ) plus ``costwarden.*`` ones for
cost and attribution. A cost is a double here (attributes have no decimal type); the ledger
keeps the exact one. This module needs the ``otel`` extra and is imported only when enabled.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.trace import SpanKind
from opentelemetry.trace.status import Status as SpanStatus
from opentelemetry.trace.status import StatusCode
from opentelemetry.util.types import AttributeValue

from costwarden.errors import ConfigError
from costwarden.monitor.metrics_config import OtelConfig
from costwarden.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES
from costwarden.records import Status, UsageRecord

OPERATIONS = {
    CHAT: "chat",
    MESSAGES: "chat",
    COMPLETIONS: "text_completion",
    EMBEDDINGS: "embeddings",
}
_OTLP_MODULES = {
    "http/protobuf": "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "grpc": "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
}
_ERROR_DESCRIPTION_CHARS = 200

Attributes = dict[str, AttributeValue]


class SpanEmitter:
    """Turns finished records into spans on ``provider``'s tracer.

    ``providers``: the provider of each configured model, so that a request refused before
    any upstream call still names the provider it was meant for. ``owned``: whether
    ``close`` shuts the provider down (not when it is the process's global one).
    """

    def __init__(
        self,
        provider: trace.TracerProvider,
        providers: Mapping[str, str],
        *,
        owned: bool,
    ) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("costwarden")
        self._providers = dict(providers)
        self._owned = owned

    def observe(self, record: UsageRecord) -> None:
        """Schedule the record's span (see module docstring for why not now)."""
        asyncio.get_running_loop().call_soon(self.emit, record)

    def emit(self, record: UsageRecord) -> None:
        """Build and end the span of ``record`` now."""
        end_ns = _ns(record)
        start_ns = end_ns - int(record.latency_ms * 1_000_000)
        operation = OPERATIONS.get(record.api, record.api)
        span = self._tracer.start_span(
            f"{operation} {record.requested_model}",
            kind=SpanKind.CLIENT,
            attributes=self.attributes(record, operation),
            start_time=start_ns,
        )
        if record.status is not Status.OK:
            description = (record.error_message or record.status.value)[:_ERROR_DESCRIPTION_CHARS]
            span.set_status(SpanStatus(StatusCode.ERROR, description))
        span.end(end_time=end_ns)

    def attributes(self, record: UsageRecord, operation: str) -> Attributes:
        attrs: Attributes = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": record.requested_model,
            "gen_ai.request.stream": record.stream,
            "costwarden.request_id": record.request_id,
            "costwarden.status": record.status.value,
        }
        provider = record.provider or self._providers.get(
            record.resolved_model or record.requested_model
        )
        if provider is not None:
            attrs["gen_ai.provider.name"] = provider
            attrs["gen_ai.system"] = provider
        _add_response(attrs, record)
        _add_attribution(attrs, record)
        if record.status is not Status.OK:
            attrs["error.type"] = record.error_type or record.status.value
        return attrs

    async def close(self) -> None:
        """Export what is still queued and stop (only a provider this emitter built)."""
        await asyncio.sleep(0)  # spans scheduled by the last requests are built first
        if self._owned and isinstance(self.provider, TracerProvider):
            await asyncio.to_thread(self.provider.shutdown)


def _add_response(attrs: Attributes, record: UsageRecord) -> None:
    if not record.attempts:
        return  # refused, or answered by a savings stage: no model answered, no tokens used
    model = record.reported_model or record.upstream_model
    if model:
        attrs["gen_ai.response.model"] = model
    usage = record.usage
    attrs["gen_ai.usage.input_tokens"] = usage.input_tokens
    attrs["gen_ai.usage.output_tokens"] = usage.output_tokens
    if usage.cache_read_tokens:
        attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        attrs["gen_ai.usage.cache_write.input_tokens"] = usage.cache_write_tokens
    if usage.reasoning_tokens:
        attrs["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
    attrs["costwarden.attempts"] = len(record.attempts)
    attrs["costwarden.usage_estimated"] = usage.estimated


def _add_attribution(attrs: Attributes, record: UsageRecord) -> None:
    if record.cost is not None:
        attrs["costwarden.cost_usd"] = float(record.cost)
    if record.resolved_model:
        attrs["costwarden.model"] = record.resolved_model
    principal = record.principal
    if principal is not None:
        attrs["costwarden.key_id"] = principal.key_id
        if principal.user:
            attrs["costwarden.user"] = principal.user
        if principal.team:
            attrs["costwarden.team"] = principal.team
    _add_tags(attrs, record)


def _add_tags(attrs: Attributes, record: UsageRecord) -> None:
    tags = record.tags
    if tags.session:
        attrs["gen_ai.conversation.id"] = tags.session
    if tags.feature:
        attrs["costwarden.feature"] = tags.feature
    if tags.env:
        attrs["costwarden.env"] = tags.env
    if record.savings:
        attrs["costwarden.savings"] = [saving.kind for saving in record.savings]
        saved = record.cost_saved
        if saved is not None:
            attrs["costwarden.saved_usd"] = float(saved)


def _ns(record: UsageRecord) -> int:
    finished = record.finished_at or record.created_at
    return int(finished.timestamp() * 1_000_000_000)


def build_span_emitter(
    config: OtelConfig, providers: Mapping[str, str], environ: Mapping[str, str]
) -> SpanEmitter:
    """The emitter for ``config`` (whose ``enabled`` the caller checked)."""
    if config.exporter == "global":
        return SpanEmitter(trace.get_tracer_provider(), providers, owned=False)
    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: config.service_name}
    provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
    if config.exporter != "none":
        provider.add_span_processor(BatchSpanProcessor(_exporter(config.exporter, environ)))
    return SpanEmitter(provider, providers, owned=True)


def _exporter(kind: str, environ: Mapping[str, str]) -> SpanExporter:
    if kind == "console":
        return ConsoleSpanExporter()
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    module_name = _OTLP_MODULES.get(protocol)
    if module_name is None:
        raise ConfigError(f"OTLP protocol {protocol!r} is not supported (use http/protobuf, grpc)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        package = "opentelemetry-exporter-otlp-proto-" + protocol.split("/")[0]
        raise ConfigError(
            f"metrics.otel.exporter=otlp needs {package} (pip install {package}); "
            "or set metrics.otel.exporter to console, global or none"
        ) from exc
    exporter: SpanExporter = module.OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_* itself
    return exporter
