"""What counting each request for ``/metrics`` (and tracing it) costs the gateway.

    .venv/bin/python bench/bench_metrics.py [--duration 6] [--connections 32] [--rounds 3]

Part 1, in process, per finished record (a mix of 1,000 records over 10 teams, 5 features,
ok / rejected / cache hits), the median of 7 passes:

    observe            costwarden's registry (GatewayMetrics.observe), warm: called back to back
    observe, cold      the same, each call timed alone after 3 MB of memory was overwritten,
                       so its code and data come from far caches as in the serving process
                       (where a request runs through ~300 µs of other code between two calls)
    prometheus_client  the same numbers through prometheus_client's labelled Counters and
                       Histograms: the library this registry was measured against
    otel span          SpanEmitter.emit: one GenAI span on an SDK tracer provider with no
                       exporter (what metrics.otel.enabled adds before any export)
    scrape             rendering /metrics for 1,000 series (per scrape, not per request)

Part 2, wrk against three gateways (real processes, SQLite ledger each, one fake upstream),
identical but for ``metrics``: ``off`` (enabled: false), ``on`` (the default) and ``otel``
(on, plus spans with exporter ``none``), interleaved round by round. Prints req/s, p50 / p99,
the share of ``off`` and each gateway's main-thread CPU per request. Writes
bench/results/metrics.json.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, Counter, Histogram
from tests.support import procs
from wrkbench import (
    CpuSamples,
    Run,
    cpu_rows,
    one_model_gateway,
    parse_args,
    report,
    rotated,
    thread_cpu_s,
    wrk,
)

from costwarden.monitor.exposition import render
from costwarden.monitor.metrics import GatewayMetrics
from costwarden.monitor.metrics_config import DEFAULT_LATENCY_BUCKETS_S, MetricsConfig
from costwarden.monitor.otel import SpanEmitter
from costwarden.records import Attempt, Principal, Saving, Status, Tags, TokenUsage, UsageRecord
from costwarden.records import utcnow as now

VARIANTS = ("off", "on", "otel")
PASSES = 7
EVICT_BYTES = 3 * 1024 * 1024
MODEL = "gpt-4o-mini"


def sample_records(count: int = 1000) -> list[UsageRecord]:
    """Finished records as the pipeline leaves them: mostly answered, some refused, some hits."""
    records = []
    for index in range(count):
        finished = now()
        record = UsageRecord(
            request_id=f"cw-{index}",
            created_at=finished - timedelta(milliseconds=40),
            api="chat.completions",
            requested_model=MODEL,
            principal=Principal(f"k{index % 50}", f"user-{index % 50}", f"team-{index % 10}"),
            tags=Tags(feature=f"feature-{index % 5}"),
            resolved_model=MODEL,
            usage=TokenUsage(input_tokens=120 + index % 7, output_tokens=16),
            cost=Decimal("0.0000276"),
            latency_ms=40.0 + index % 13,
            finished_at=finished,
        )
        if index % 20 == 19:
            record.status, record.error_type = Status.REJECTED, "rate_limit_exceeded"
        elif index % 10 == 9:
            record.savings.append(Saving("cache_exact", Decimal("0.0000276"), 136))
        else:
            record.provider, record.upstream_latency_ms = "openai", 35.0
            record.attempts.append(Attempt(MODEL, "openai", "ep", MODEL, 0.0, latency_ms=35.0))
        records.append(record)
    return records


def prometheus_client_observer() -> Callable[[UsageRecord], None]:
    """The registry's numbers, counted through prometheus_client (same labels and buckets)."""
    registry = CollectorRegistry()
    buckets = DEFAULT_LATENCY_BUCKETS_S
    requests = Counter(
        "requests", "", ["api", "model", "provider", "team", "status"], registry=registry
    )
    tokens = Counter("tokens", "", ["model", "team", "type"], registry=registry)
    cost = Counter("cost_usd", "", ["model", "team", "feature"], registry=registry)
    latency = Histogram(
        "duration", "", ["api", "model", "status"], buckets=buckets, registry=registry
    )
    upstream = Histogram("upstream", "", ["provider", "model"], buckets=buckets, registry=registry)
    rejections = Counter("rejections", "", ["reason"], registry=registry)
    saved = Counter("saved_usd", "", ["kind", "model", "team"], registry=registry)

    def observe(record: UsageRecord) -> None:
        model = record.resolved_model or record.requested_model
        team = record.principal.team if record.principal else ""
        provider, status = record.provider or "", record.status.value
        requests.labels(record.api, model, provider, team, status).inc()
        usage = record.usage
        for kind, count in (
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_read", usage.cache_read_tokens),
            ("cache_write", usage.cache_write_tokens),
            ("reasoning", usage.reasoning_tokens),
        ):
            tokens.labels(model, team, kind).inc(count)
        cost.labels(model, team, record.tags.feature or "").inc(float(record.cost or 0))
        latency.labels(record.api, model, status).observe(record.latency_ms / 1000)
        if record.attempts:
            upstream.labels(provider, model).observe(record.upstream_latency_ms / 1000)
        if record.status is Status.REJECTED:
            rejections.labels(record.error_type or "").inc()
        for saving in record.savings:
            saved.labels(saving.kind, model, team).inc(float(saving.cost_saved or 0))

    return observe


def per_record_us(observe: Callable[[UsageRecord], None], records: list[UsageRecord]) -> float:
    """Median over PASSES of the µs one ``observe`` call takes, cycling over ``records``."""
    timings = []
    for _ in range(PASSES):
        start = time.perf_counter_ns()
        for record in records:
            observe(record)
        timings.append((time.perf_counter_ns() - start) / len(records) / 1000)
    return median(timings)


def cold_per_record_us(observe: Callable[[UsageRecord], None], records: list[UsageRecord]) -> float:
    """Median µs of single ``observe`` calls, each after the CPU caches were flushed out."""
    evict, filler = bytearray(EVICT_BYTES), bytes(EVICT_BYTES)
    timings = []
    for record in records:
        evict[:] = filler
        start = time.perf_counter_ns()
        observe(record)
        timings.append((time.perf_counter_ns() - start) / 1000)
    return median(timings)


def scrape_ms(series: int = 1000) -> float:
    metrics = GatewayMetrics(MetricsConfig(max_label_values=series))
    for index, record in enumerate(sample_records(series)):
        record.principal = Principal("k", "u", f"team-{index}")
        metrics.observe(record)
    timings = []
    for _ in range(PASSES):
        start = time.perf_counter_ns()
        render(metrics.families())
        timings.append((time.perf_counter_ns() - start) / 1e6)
    return median(timings)


def micro() -> dict[str, float]:
    records = sample_records()
    ours = GatewayMetrics(MetricsConfig(), [MODEL])
    spans = SpanEmitter(TracerProvider(shutdown_on_exit=False), {MODEL: "openai"}, owned=True)
    results = {
        "observe_us": per_record_us(ours.observe, records),
        "observe_cold_us": cold_per_record_us(ours.observe, records),
        "prometheus_client_us": per_record_us(prometheus_client_observer(), records),
        "otel_span_us": per_record_us(spans.emit, records),
        "scrape_1000_series_ms": scrape_ms(),
    }
    print(f"{'per finished record':<34}{'µs':>8}")
    for name in ("observe_us", "observe_cold_us", "prometheus_client_us", "otel_span_us"):
        print(f"{name.removesuffix('_us'):<34}{results[name]:>8.2f}")
    print(f"{'scrape, 1,000 series (ms)':<34}{results['scrape_1000_series_ms']:>8.2f}\n")
    return results


def gateway_config(tmp: Path, variant: str, upstream_port: int) -> dict[str, Any]:
    data = one_model_gateway(tmp, variant, upstream_port)
    if variant == "off":
        data["metrics"] = {"enabled": False}
    elif variant == "otel":
        data["metrics"] = {"otel": {"enabled": True, "exporter": "none"}}
    return data


_WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
wrk.headers["x-costwarden-feature"] = "bench"
wrk.body = '{"model":"gpt-4o-mini","max_tokens":16,' ..
  '"messages":[{"role":"user","content":"Count me."}]}'
"""

# (variant, connections, round) -> main-thread CPU µs per request
def measure(tmp: Path, conns: list[int], seconds: int, rounds: int, cpu: CpuSamples) -> list[Run]:
    up_port = procs.free_port()
    ports = {variant: procs.free_port() for variant in VARIANTS}
    commands = [(procs.fake_upstream_command(up_port), up_port)]
    scripts: dict[str, Path] = {}
    for variant in VARIANTS:
        config = procs.write_config(tmp / f"{variant}.yaml", gateway_config(tmp, variant, up_port))
        key = procs.create_key(config, "bench-user", "bench-team")
        scripts[variant] = tmp / f"{variant}.lua"
        scripts[variant].write_text(_WRK_SCRIPT % {"key": key})
        commands.append((procs.gateway_command(config, ports[variant]), ports[variant]))
    pids: dict[str, int] = {}

    def drive(variant: str, connections: int, duration: int, index: int) -> Run:
        url = f"http://127.0.0.1:{ports[variant]}/v1/chat/completions"
        before = thread_cpu_s(pids[variant])
        result = wrk(url, scripts[variant], connections, duration, variant, round_index=index)
        served = result.requests_per_s * duration
        cpu[variant, connections, index] = (thread_cpu_s(pids[variant]) - before) / served * 1e6
        return result

    runs: list[Run] = []
    with procs.spawned_together(commands) as started:
        pids.update(zip(VARIANTS, (p.pid for p in started[1:]), strict=True))
        for variant in VARIANTS:  # warm connection pools and caches before measuring
            drive(variant, 8, 2, 0)
        for index in range(rounds):  # interleaved, rotated: a slow spell hits every variant
            for c in conns:
                for variant in rotated(VARIANTS, index):
                    runs.append(drive(variant, c, seconds, index))
    return runs


def main() -> int:
    duration, conns, rounds = parse_args()
    in_process = micro()
    cpu: CpuSamples = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        runs = measure(Path(tmpdir), conns, duration, rounds, cpu)
    rows = cpu_rows(cpu, VARIANTS, "off", conns, rounds)
    extra = {"variants": list(VARIANTS), "per_record": in_process, "cpu": rows}
    report(runs, baseline="off", name="metrics", extra=extra)
    failed = sum(r.errors for r in runs)
    if failed:
        print(f"{failed} requests were not answered 2xx", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
