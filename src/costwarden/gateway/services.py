"""Everything a request handler needs, built once at start-up and passed in."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp

from costwarden.config import Settings
from costwarden.errors import ConfigError, CountersUnavailable
from costwarden.gateway.admission import Admitter, LeaseKeeper
from costwarden.gateway.admission_batch import AdmissionBatcher
from costwarden.gateway.routing import Router
from costwarden.gateway.settlement import SettlementBatcher
from costwarden.gateway.unary_usage import UnaryPricer
from costwarden.gateway.upstream import UpstreamCaller
from costwarden.keys import KeyStore
from costwarden.ledger import Ledger
from costwarden.monitor.alert_log import LedgerAlertSink
from costwarden.monitor.alert_sinks import build_alerts
from costwarden.monitor.alerts import AlertRouter, PolicyAlertSink
from costwarden.monitor.jobs import JobRunner, build_monitor
from costwarden.monitor.metrics import GatewayMetrics
from costwarden.policy.engine import PolicyEngine
from costwarden.policy.events import EventSink, FanoutEventSink, LoggingEventSink
from costwarden.policy.runtime import RuntimeBudgets
from costwarden.policy.seeding import LedgerSeed
from costwarden.pricing import PriceBook, TokenCounter
from costwarden.records import UsageRecord
from costwarden.savings.factory import build_stages
from costwarden.savings.services import StageServices
from costwarden.savings.stages import SavingsStages
from costwarden.state.base import StateBackend
from costwarden.state.factory import build_state_backend
from costwarden.state.memory import MemoryStateBackend
from costwarden.state.redis import RedisStateBackend

if TYPE_CHECKING:  # the OpenTelemetry SDK is an optional extra
    from costwarden.monitor.otel import SpanEmitter

log = logging.getLogger("costwarden.gateway")
# How long start-up waits for spooled records to reach the ledger before seeding budgets.
_SEED_FLUSH_S = 10.0


@dataclass(slots=True)
class Services:
    settings: Settings
    prices: PriceBook
    tokens: TokenCounter
    ledger: Ledger
    keys: KeyStore
    router: Router
    caller: UpstreamCaller
    session: aiohttp.ClientSession
    state: StateBackend
    policy: PolicyEngine
    runtime_budgets: RuntimeBudgets
    leases: LeaseKeeper
    settlements: SettlementBatcher
    admissions: AdmissionBatcher | None  # group commit across the network (Redis) only
    stages: SavingsStages
    stage_services: StageServices
    alerts: AlertRouter | None = None  # None: no alert sinks configured
    monitor: JobRunner | None = None  # None: monitor.enabled is off
    metrics: GatewayMetrics | None = None  # None: metrics.enabled is off
    spans: SpanEmitter | None = None  # None: metrics.otel.enabled is off

    def admitter(self) -> Admitter:
        """The spend controls' entry point for the request pipeline, over these services."""
        return Admitter(
            self.policy,
            prices=self.prices,
            tokens=self.tokens,
            router=self.router,
            leases=self.leases,
            settlements=self.settlements,
            batcher=self.admissions,
        )

    def observe(self, record: UsageRecord) -> None:
        """Count a finished request and trace it (called once, after its ledger append)."""
        try:  # free unless it raises; a monitoring bug must not fail an answered request
            if self.metrics is not None:
                self.metrics.observe(record)
            if self.spans is not None:
                self.spans.observe(record)
        except Exception:
            log.exception("metrics: counting request %s failed", record.request_id)

    def refused(self, reason: str) -> None:
        """Count a refusal that has no record (bad key, malformed body: no ledger row)."""
        if self.metrics is not None:
            self.metrics.refused(reason)

    async def close(self) -> None:
        if self.monitor is not None:
            await self.monitor.stop()  # first: its jobs use the store and the alert router
        if self.spans is not None:
            await self.spans.close()
        await self.stages.close()
        self.stage_services.close()
        await self.leases.stop()
        if self.admissions is not None:
            await self.admissions.flush()
        await self.settlements.flush()  # before the state backend closes below
        await self.runtime_budgets.stop()  # first: it reads the ledger store closed below
        if self.alerts is not None:
            await self.alerts.close()  # drains queued webhooks over the session closed below
        await self.session.close()
        await self.ledger.close()
        await self.state.aclose()


async def seed_counters(state: StateBackend, seed: LedgerSeed, ledger: Ledger) -> None:
    """Budget counters start from the period's spend in the ledger, before the first request:
    in-process counters are empty at every start, and Redis may have lost its data."""
    if isinstance(state, RedisStateBackend):  # also re-seeded later if Redis loses its data
        state.attach_seed_source(seed)
        try:
            await state.ensure_seeded()
        except CountersUnavailable as exc:  # admissions get a 503 until Redis is back
            log.warning("budget counters not ready at start-up: %s", exc.message)
    elif isinstance(state, MemoryStateBackend):
        try:  # what a previous run spooled but did not copy yet counts too
            await asyncio.wait_for(ledger.flush(), _SEED_FLUSH_S)
        except TimeoutError:
            log.warning("ledger not caught up at start-up: budgets seeded from what it holds")
        state.seed(await seed(time.time()))


def resolve_api_keys(settings: Settings, environ: dict[str, str]) -> dict[str, str | None]:
    """Upstream keys by endpoint name, read from the environment once (never logged)."""
    keys: dict[str, str | None] = {}
    for model in settings.models:
        for endpoint in model.endpoints:
            if endpoint.api_key_env is None:
                keys[endpoint.name] = None
                continue
            value = environ.get(endpoint.api_key_env)
            if not value:
                log.warning(
                    "model %s endpoint %s: environment variable %s is not set",
                    model.name,
                    endpoint.name,
                    endpoint.api_key_env,
                )
            keys[endpoint.name] = value or None
    return keys


def warn_unpriced_models(settings: Settings, prices: PriceBook) -> list[str]:
    """Names of configured models with no known price (logged once at start-up)."""
    unpriced = sorted({model for model, _ in prices.unpriced()})
    if unpriced:
        action = settings.gateway.unknown_model_pricing
        log.warning(
            "no price known for %s; requests will be %s (gateway.unknown_model_pricing=%s)",
            ", ".join(unpriced),
            "rejected" if action == "reject" else "recorded with cost unknown",
            action,
        )
    return unpriced


def build_metrics(settings: Settings) -> GatewayMetrics | None:
    if not settings.metrics.enabled:
        return None
    return GatewayMetrics(settings.metrics, (model.name for model in settings.models))


def build_spans(settings: Settings, environ: dict[str, str]) -> SpanEmitter | None:
    """The OpenTelemetry span emitter, when ``metrics.otel.enabled`` (a clear error at
    start-up when the SDK is not installed)."""
    config = settings.metrics.otel
    if not config.enabled:
        return None
    try:
        from costwarden.monitor.otel import build_span_emitter  # noqa: PLC0415 - optional extra
    except ImportError as exc:
        raise ConfigError(
            "metrics.otel.enabled needs the OpenTelemetry SDK: pip install 'costwarden[otel]'"
        ) from exc
    providers = {model.name: model.endpoints[0].provider for model in settings.models}
    return build_span_emitter(config, providers, environ)


def _upstream_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
    # auto_decompress stays on (the default) so streamed SSE reaches trackers as plain text.
    return aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",))


def _upstream_caller(
    settings: Settings,
    env: dict[str, str],
    router: Router,
    session: aiohttp.ClientSession,
    pricer: UnaryPricer,
) -> UpstreamCaller:
    gw = settings.gateway
    return UpstreamCaller(
        router,
        session=session,
        retry=gw.retry,
        api_keys=resolve_api_keys(settings, env),
        timeouts=(gw.connect_timeout_s, gw.request_timeout_s),
        pricer=pricer,
    )


async def build_services(settings: Settings, environ: dict[str, str] | None = None) -> Services:
    env = dict(os.environ if environ is None else environ)
    spans = build_spans(settings, env)  # first: a missing OpenTelemetry SDK fails before I/O
    prices = PriceBook(settings)
    warn_unpriced_models(settings, prices)
    ledger = await Ledger.open(settings.ledger)
    keys = KeyStore(ledger.store, ttl_s=settings.gateway.key_cache_ttl_s)
    router = Router(settings)
    session = _upstream_session()
    tokens = TokenCounter()
    tokens.preload()  # ~0.75 s of BPE loading belongs to start-up, not to the first request
    caller = _upstream_caller(settings, env, router, session, UnaryPricer(prices, tokens))
    state = build_state_backend(settings.state)
    # Every alert is also kept in the ledger, for the dashboard's event list.
    alerts = build_alerts(settings.alerts, session, env, extra=(LedgerAlertSink(ledger.store),))
    events: EventSink = LoggingEventSink()
    if alerts is not None:
        # Policy events keep their log line and also go through the alert path (dedup, sinks).
        events = FanoutEventSink(events, PolicyAlertSink(alerts))
    policy = PolicyEngine(
        settings.policy, state, events=events, lease_seconds=settings.state.lease_seconds
    )
    runtime_budgets = RuntimeBudgets(ledger.store, policy, settings.policy.budget_refresh_s)
    await runtime_budgets.start()
    await seed_counters(state, LedgerSeed(ledger.store, policy), ledger)
    leases = LeaseKeeper(policy, settings.state.lease_seconds)
    leases.start()
    settlements = SettlementBatcher(policy)
    remote = settings.state.backend == "redis"
    admissions = AdmissionBatcher(policy, settlements) if remote else None
    stage_services = StageServices(settings, prices, tokens)
    monitor = build_monitor(settings, ledger.store, alerts)
    return Services(
        settings,
        prices,
        tokens,
        ledger,
        keys,
        router,
        caller,
        session,
        state,
        policy,
        runtime_budgets,
        leases,
        settlements,
        admissions,
        build_stages(stage_services),
        stage_services,
        alerts,
        metrics=build_metrics(settings),
        spans=spans,
        monitor=monitor,
    )
