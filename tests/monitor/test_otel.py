"""OpenTelemetry spans from the real gateway over HTTP, captured with the SDK's in-memory
exporter: names, kind, GenAI semantic-convention attributes and times, for answered, failed and
refused requests; and the start-up errors and options of the exporter settings."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from costwarden.config import settings_from_dict
from costwarden.errors import ConfigError
from costwarden.monitor.metrics_config import OtelConfig
from costwarden.monitor.otel import build_span_emitter
from costwarden.providers.fake_upstream import FakeUpstream
from costwarden.records import UsageRecord
from tests.gateway import conftest as gateway_fixtures
from tests.gateway.conftest import RunningGateway, StartGateway, base_settings, model

upstream = gateway_fixtures.upstream
start_gateway = gateway_fixtures.start_gateway

QUESTION = [{"role": "user", "content": "Trace this request, please."}]


async def traced_gateway(
    tmp_path: Path, fake: FakeUpstream, start: StartGateway
) -> tuple[RunningGateway, InMemorySpanExporter]:
    data = base_settings(tmp_path, [model("gpt-4o-mini", f"{fake.base_url}/v1")]).model_dump(
        mode="json"
    )
    data["metrics"] = {"otel": {"enabled": True, "exporter": "none"}}
    data["policy"] = {"rate_limits": [{"scope": {"user": "alice"}, "rpm": 2}]}
    gw = await start(settings_from_dict(data))
    spans = gw.services.spans
    assert spans is not None and isinstance(spans.provider, TracerProvider)
    exporter = InMemorySpanExporter()
    spans.provider.add_span_processor(SimpleSpanProcessor(exporter))
    return gw, exporter


async def ask(gw: RunningGateway, **body: Any) -> tuple[int, UsageRecord]:
    payload = {"model": "gpt-4o-mini", "messages": QUESTION, **body}
    headers = {
        "authorization": f"Bearer {gw.key}",
        "x-costwarden-feature": "tracing",
        "x-costwarden-session": "conv-7",
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gw.url}/v1/chat/completions", json=payload, headers=headers) as resp,
    ):
        await resp.read()
        record = await gw.record(resp.headers["x-request-id"])
        return resp.status, record


async def finished_spans(exporter: InMemorySpanExporter, count: int) -> list[ReadableSpan]:
    """The spans once ``count`` of them are built (they are built on the loop's next turn)."""
    for _ in range(200):
        spans = list(exporter.get_finished_spans())
        if len(spans) >= count:
            return spans
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} spans, got {len(exporter.get_finished_spans())}")


def assert_times(span: ReadableSpan, record: UsageRecord) -> None:
    assert record.finished_at is not None
    end_ns = int(record.finished_at.timestamp() * 1_000_000_000)
    assert span.end_time == end_ns
    assert span.start_time == end_ns - int(record.latency_ms * 1_000_000)


async def test_an_answered_request_has_a_genai_client_span(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw, exporter = await traced_gateway(tmp_path, upstream, start_gateway)
    status, record = await ask(gw, max_tokens=12)
    assert status == 200
    (span,) = await finished_spans(exporter, 1)
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert record.cost is not None and record.reported_model is not None
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.stream": False,
        "gen_ai.response.model": record.reported_model,
        "gen_ai.usage.input_tokens": record.usage.input_tokens,
        "gen_ai.usage.output_tokens": 12,
        "gen_ai.conversation.id": "conv-7",
        "costwarden.request_id": record.request_id,
        "costwarden.status": "ok",
        "costwarden.attempts": 1,
        "costwarden.usage_estimated": False,
        "costwarden.cost_usd": float(record.cost),
        "costwarden.model": "gpt-4o-mini",
        "costwarden.key_id": record.principal.key_id if record.principal else None,
        "costwarden.user": "alice",
        "costwarden.team": "research",
        "costwarden.feature": "tracing",
    }
    assert_times(span, record)
    assert span.resource.attributes["service.name"] == "costwarden"


async def test_failed_and_refused_requests_carry_error_type(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw, exporter = await traced_gateway(tmp_path, upstream, start_gateway)
    failed_status, failed = await ask(gw, x_fake={"status": 400})
    await ask(gw)  # alice's second request this minute: the last the rate limit allows
    refused_status, refused = await ask(gw)
    assert (failed_status, refused_status) == (400, 429)
    spans = {
        dict(s.attributes or {})["costwarden.request_id"]: s
        for s in await finished_spans(exporter, 3)
    }

    upstream_failure = spans[failed.request_id]
    assert upstream_failure.status.status_code is StatusCode.ERROR
    assert upstream_failure.attributes is not None
    assert upstream_failure.attributes["error.type"] == "upstream_error"
    assert upstream_failure.attributes["costwarden.status"] == "upstream_error"
    assert upstream_failure.attributes["gen_ai.provider.name"] == "openai"
    assert upstream_failure.attributes["costwarden.attempts"] == 1
    assert_times(upstream_failure, failed)

    refusal = spans[refused.request_id]
    assert refusal.name == "chat gpt-4o-mini"
    assert refusal.status.status_code is StatusCode.ERROR
    assert refusal.attributes is not None
    assert refusal.attributes["error.type"] == "rate_limit_exceeded"
    # Never sent upstream: no response model and no token counts, yet the provider it was for.
    assert refusal.attributes["gen_ai.provider.name"] == "openai"
    assert "gen_ai.response.model" not in refusal.attributes
    assert "gen_ai.usage.input_tokens" not in refusal.attributes
    assert_times(refusal, refused)


def test_otlp_without_its_exporter_package_fails_at_start_up_with_the_fix() -> None:
    config = OtelConfig(enabled=True, exporter="otlp")
    with pytest.raises(ConfigError, match="opentelemetry-exporter-otlp-proto-http"):
        build_span_emitter(config, {}, {})
    with pytest.raises(ConfigError, match="opentelemetry-exporter-otlp-proto-grpc"):
        build_span_emitter(config, {}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    with pytest.raises(ConfigError, match="not supported"):
        build_span_emitter(config, {}, {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "carrier-pigeon"})


def test_global_uses_the_process_provider_and_the_service_name_can_come_from_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emitter = build_span_emitter(OtelConfig(enabled=True, exporter="global"), {}, {})
    assert emitter.provider is trace.get_tracer_provider()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gateway-eu")
    named = build_span_emitter(OtelConfig(enabled=True, exporter="none"), {}, dict(os.environ))
    assert isinstance(named.provider, TracerProvider)
    assert named.provider.resource.attributes["service.name"] == "gateway-eu"
