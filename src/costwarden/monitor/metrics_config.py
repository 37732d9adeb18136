"""Typed settings for the gateway's Prometheus metrics and OpenTelemetry spans.

Kept apart from the registry (and free of OpenTelemetry imports) so that ``costwarden.config``
stays light to import; the OpenTelemetry packages are an optional extra, imported only when
``metrics.otel.enabled`` is set.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Seconds. OpenTelemetry's GenAI semantic conventions advise these boundaries for
# ``gen_ai.client.operation.duration`` (powers of two from 10 ms); 5 ms in front catches cache
# hits and refusals, 120 s at the end the long reasoning and streamed answers.
DEFAULT_LATENCY_BUCKETS_S = (
    0.005,
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
    120.0,
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OtelConfig(_Model):
    """One OpenTelemetry span per proxied request, named and attributed per the GenAI semantic
    conventions (``chat gpt-4o-mini``, kind CLIENT).

    ``exporter``: ``otlp`` needs ``opentelemetry-exporter-otlp-proto-http`` (or ``-grpc``)
    installed and reads the standard ``OTEL_EXPORTER_OTLP_*`` variables; ``console`` prints
    spans to stdout (to try it out); ``global`` hands spans to the process's global tracer
    provider, set up elsewhere (``opentelemetry-instrument``, or the application embedding the
    gateway); ``none`` builds spans on a provider of its own with no exporter, for code that
    adds its span processors to it (``services.spans.provider``; the tests do).
    """

    enabled: bool = False
    exporter: Literal["otlp", "console", "global", "none"] = "otlp"
    # The resource's service.name, unless OTEL_SERVICE_NAME says otherwise.
    service_name: str = "costwarden"


class MetricsConfig(_Model):
    """``GET /metrics`` in the Prometheus text format, fed once per finished request.

    ``require_admin_key``: off by default, as Prometheus scrapers usually reach a private
    port without credentials; turn it on when the gateway's port is reachable by clients, since
    the metrics name teams, models and features and show their spend (a scraper then sends the
    admin key as a bearer token).

    Labels a client can choose (the ``x-costwarden-feature`` header, an unknown model name)
    would let one hostile caller create series without end; every label therefore keeps at
    most ``max_label_values`` distinct values (configured model names do not count) and folds
    the rest into ``other``, and the registry keeps at most ``max_series`` label combinations.
    """

    enabled: bool = True
    require_admin_key: bool = False
    max_label_values: int = Field(default=100, ge=1, le=100_000)
    max_series: int = Field(default=5000, ge=1, le=1_000_000)
    latency_buckets_s: tuple[float, ...] = DEFAULT_LATENCY_BUCKETS_S
    otel: OtelConfig = OtelConfig()

    @field_validator("latency_buckets_s")
    @classmethod
    def _increasing(cls, buckets: tuple[float, ...]) -> tuple[float, ...]:
        if not buckets:
            raise ValueError("latency_buckets_s needs at least one boundary")
        if any(b <= 0 for b in buckets) or any(a >= b for a, b in pairwise(buckets)):
            raise ValueError("latency_buckets_s must be positive and strictly increasing")
        return buckets
