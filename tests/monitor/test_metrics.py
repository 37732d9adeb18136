"""The metrics registry on its own: what one record adds, label bounds, the exposition text.

Records are real ``UsageRecord`` values as the pipeline leaves them; the text is read back with
``prometheus_client``'s parser, so a format mistake fails here rather than in a scraper.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from costwarden.config import settings_from_dict
from costwarden.errors import ConfigError
from costwarden.monitor.exposition import Family, render
from costwarden.monitor.metrics import OTHER, GatewayMetrics
from costwarden.monitor.metrics_config import MetricsConfig
from costwarden.records import (
    Attempt,
    Principal,
    Saving,
    Status,
    Tags,
    TokenUsage,
    UsageRecord,
    utcnow,
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def record(
    *,
    model: str = "gpt-4o-mini",
    team: str | None = "research",
    feature: str | None = None,
    status: Status = Status.OK,
    cost: str | None = "0.000123",
    latency_ms: float = 12.0,
    upstream_ms: float | None = 10.0,
    usage: TokenUsage | None = None,
) -> UsageRecord:
    """A finished record as ``finish_record`` leaves it (an attempt unless ``upstream_ms`` is
    None)."""
    now = utcnow()
    rec = UsageRecord(
        request_id="cw-test",
        created_at=now - timedelta(milliseconds=latency_ms),
        api="chat.completions",
        requested_model=model,
        principal=Principal("k1", "alice", team),
        tags=Tags(feature=feature),
        resolved_model=model,
        status=status,
        cost=Decimal(cost) if cost is not None else None,
        latency_ms=latency_ms,
        finished_at=now,
        usage=usage or TokenUsage(input_tokens=20, output_tokens=16),
    )
    if upstream_ms is not None:
        rec.provider = "openai"
        rec.upstream_latency_ms = upstream_ms
        rec.attempts.append(Attempt(model, "openai", "ep", model, 0.0, latency_ms=upstream_ms))
    return rec


def scrape(metrics: GatewayMetrics) -> Samples:
    text = render(metrics.families()).decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def test_one_record_adds_requests_tokens_cost_and_latency() -> None:
    metrics = GatewayMetrics(MetricsConfig(), ["gpt-4o-mini"])
    usage = TokenUsage(input_tokens=1100, output_tokens=40, cache_read_tokens=1024)
    metrics.observe(record(usage=usage, feature="search"))
    metrics.observe(record(cost="0.000877", latency_ms=3000.0, upstream_ms=2900.0))
    got = scrape(metrics)
    ok = {"api": "chat.completions", "model": "gpt-4o-mini", "provider": "openai"}
    assert value(got, "costwarden_requests_total", **ok, team="research", status="ok") == 2
    tokens = {"model": "gpt-4o-mini", "team": "research"}
    assert value(got, "costwarden_tokens_total", **tokens, type="input") == 1100 + 20
    assert value(got, "costwarden_tokens_total", **tokens, type="output") == 56
    assert value(got, "costwarden_tokens_total", **tokens, type="cache_read") == 1024
    cost = {"model": "gpt-4o-mini", "team": "research"}
    assert value(got, "costwarden_cost_usd_total", **cost, feature="search") == 0.000123
    assert value(got, "costwarden_cost_usd_total", **cost, feature="") == 0.000877
    duration = {"api": "chat.completions", "model": "gpt-4o-mini", "status": "ok"}
    name = "costwarden_request_duration_seconds"
    assert value(got, f"{name}_bucket", **duration, le="0.01") == 0
    assert value(got, f"{name}_bucket", **duration, le="0.02") == 1  # 12 ms
    assert value(got, f"{name}_bucket", **duration, le="2.56") == 1
    assert value(got, f"{name}_bucket", **duration, le="5.12") == 2  # 3 s
    assert value(got, f"{name}_bucket", **duration, le="+Inf") == 2
    assert value(got, f"{name}_count", **duration) == 2
    assert value(got, f"{name}_sum", **duration) == pytest.approx(3.012)
    upstream = {"provider": "openai", "model": "gpt-4o-mini"}
    assert value(got, "costwarden_upstream_duration_seconds_count", **upstream) == 2


def test_money_is_written_as_exact_decimal_text() -> None:
    metrics = GatewayMetrics(MetricsConfig())
    for _ in range(3):
        metrics.observe(record(cost="0.1"))
    text = render(metrics.families()).decode()
    # 0.1 + 0.1 + 0.1 in float is 0.30000000000000004; the Decimal sum is exact.
    assert 'costwarden_cost_usd_total{model="gpt-4o-mini",team="research",feature=""} 0.3\n' in text


def test_refusals_and_rejected_records_count_by_reason() -> None:
    metrics = GatewayMetrics(MetricsConfig())
    rejected = record(status=Status.REJECTED, cost="0", upstream_ms=None)
    rejected.error_type = "budget_exceeded"
    metrics.observe(rejected)
    metrics.refused("invalid_api_key")
    metrics.refused("invalid_api_key")
    got = scrape(metrics)
    assert value(got, "costwarden_rejections_total", reason="budget_exceeded") == 1
    assert value(got, "costwarden_rejections_total", reason="invalid_api_key") == 2
    labels = {"api": "chat.completions", "model": "gpt-4o-mini", "provider": "", "team": "research"}
    assert value(got, "costwarden_requests_total", **labels, status="rejected") == 1
    # No upstream call, so no upstream latency series at all.
    assert not any(name.startswith("costwarden_upstream_duration") for name, _ in got)


def test_cache_hits_and_savings() -> None:
    metrics = GatewayMetrics(MetricsConfig())
    hit = record(cost="0", upstream_ms=None)
    hit.savings.append(Saving("cache_exact", Decimal("0.00042"), 36, "answer of cw-1"))
    metrics.observe(hit)
    trimmed = record()
    trimmed.savings.append(Saving("trim", None, 500))  # no price: counted, no dollars
    metrics.observe(trimmed)
    got = scrape(metrics)
    exact = {"kind": "cache_exact", "model": "gpt-4o-mini", "team": "research"}
    trim = {**exact, "kind": "trim"}
    assert value(got, "costwarden_cache_hits_total", **exact) == 1
    assert ("costwarden_cache_hits_total", frozenset(trim.items())) not in got
    assert value(got, "costwarden_saved_usd_total", **exact) == 0.00042
    assert value(got, "costwarden_saved_tokens_total", **exact) == 36
    assert value(got, "costwarden_savings_total", **trim) == 1
    assert value(got, "costwarden_saved_usd_total", **trim) == 0
    assert value(got, "costwarden_saved_tokens_total", **trim) == 500


def test_unpriced_requests_are_counted_not_summed_as_zero() -> None:
    metrics = GatewayMetrics(MetricsConfig())
    metrics.observe(record(cost=None))
    got = scrape(metrics)
    assert value(got, "costwarden_unpriced_requests_total", model="gpt-4o-mini") == 1
    labels = {"model": "gpt-4o-mini", "team": "research", "feature": ""}
    assert value(got, "costwarden_cost_usd_total", **labels) == 0


def test_label_values_beyond_the_limit_fold_into_other() -> None:
    metrics = GatewayMetrics(MetricsConfig(max_label_values=2), ["gpt-4o-mini", "gpt-4o"])
    for feature in ("a", "b", "c", "d", "x" * 201):
        metrics.observe(record(feature=feature, model="gpt-4o"))
    for model in ("junk-1", "junk-2", "junk-3"):  # unknown names a client sent
        metrics.observe(record(model=model, status=Status.REJECTED, upstream_ms=None))
    metrics.observe(record(model="gpt-4o-mini"))  # configured: always its own value
    got = scrape(metrics)
    features = {
        dict(labels)["feature"]
        for name, labels in got
        if name == "costwarden_cost_usd_total" and dict(labels)["model"] == "gpt-4o"
    }
    assert features == {"a", "b", OTHER}
    models = {dict(labels)["model"] for name, labels in got if name == "costwarden_requests_total"}
    assert models == {"gpt-4o", "gpt-4o-mini", "junk-1", "junk-2", OTHER}
    assert value(got, "costwarden_metrics_label_overflow_total", label="feature") == 3
    assert value(got, "costwarden_metrics_label_overflow_total", label="model") == 1
    total = {"model": "gpt-4o", "team": "research", "feature": OTHER}
    assert value(got, "costwarden_cost_usd_total", **total) == pytest.approx(3 * 0.000123)


def test_series_beyond_max_series_fold_into_one_per_api_and_status() -> None:
    metrics = GatewayMetrics(MetricsConfig(max_series=2))
    for team in ("t1", "t2", "t3", "t4"):
        metrics.observe(record(team=team))
    got = scrape(metrics)
    teams = {
        dict(labels)["team"]: count
        for (name, labels), count in got.items()
        if name == "costwarden_requests_total"
    }
    assert teams == {"t1": 1, "t2": 1, OTHER: 2}
    assert value(got, "costwarden_metrics_label_overflow_total", label="series") == 2


def test_hostile_label_values_cannot_forge_series() -> None:
    metrics = GatewayMetrics(MetricsConfig())
    evil = 'x"} 1e9\ncostwarden_cost_usd_total{model="y'
    metrics.observe(record(feature=evil + "\\"))
    got = scrape(metrics)
    costs = [labels for name, labels in got if name == "costwarden_cost_usd_total"]
    assert [dict(labels)["feature"] for labels in costs] == [evil + "\\"]


def test_a_family_does_not_mix_money_and_floats() -> None:
    family = Family("f", "gauge", "mixed", ("a",))
    family.add(("x",), Decimal("1.5"))
    family.add(("x",), Decimal("0.5"))
    assert family.samples[("x",)] == Decimal("2.0")
    with pytest.raises(TypeError):
        family.add(("x",), 1.0)


@pytest.mark.parametrize("buckets", [[], [0.1, 0.1], [0.5, 0.2], [-1.0, 1.0]])
def test_latency_buckets_must_be_positive_and_increasing(buckets: list[float]) -> None:
    with pytest.raises(ConfigError, match="latency_buckets_s"):
        settings_from_dict({"metrics": {"latency_buckets_s": buckets}})


def test_unknown_metrics_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="colour"):
        settings_from_dict({"metrics": {"colour": "red"}})
    settings = settings_from_dict({"metrics": {"otel": {"enabled": True, "exporter": "console"}}})
    assert settings.metrics.enabled and settings.metrics.otel.exporter == "console"
