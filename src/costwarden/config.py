"""Typed settings, built once from YAML (+ environment) and passed in; never a global.

``load_settings(path)`` reads a YAML file, substitutes ``${VAR}`` / ``${VAR:-default}`` in its
string values from the environment, and validates it. Secrets never live in the file: an
endpoint names the environment variable that holds its key (``api_key_env``).
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from costwarden.batch.config import BatchConfig
from costwarden.dashboard.config import DashboardConfig
from costwarden.distill.config import DistillConfig
from costwarden.errors import ConfigError
from costwarden.monitor.alerts_config import AlertsConfig
from costwarden.monitor.config import MonitorConfig
from costwarden.monitor.metrics_config import MetricsConfig
from costwarden.policy.config import PolicyConfig, StateConfig
from costwarden.savings.cascade.config import check_cascade_models
from costwarden.savings.config import SavingsConfig
from costwarden.savings.router.config import check_router_models


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CustomPrice(_Model):
    """A hand-set price in USD per million tokens, in force from ``effective_from``."""

    effective_from: datetime | None = None
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cache_read_per_mtok: Decimal | None = None  # default: input price
    cache_write_per_mtok: Decimal | None = None  # default: input price


class SelfHostedPrice(_Model):
    """Price a self-hosted endpoint from what its GPUs cost per hour.

    Cost per token = gpu_hourly_usd × gpus ÷ (throughput_tokens_per_s × 3600 × utilisation);
    or, per request, gpu_hourly_usd × gpus ÷ (requests_per_hour × utilisation).
    Utilisation below 1 makes idle time show up in the price of the requests that do run.
    """

    gpu_hourly_usd: Decimal
    gpus: int = 1
    throughput_tokens_per_s: Decimal | None = None
    requests_per_hour: Decimal | None = None
    utilisation: Decimal = Decimal(1)
    # Prefill is far cheaper than decode per token; counted input tokens are weighted by this.
    input_token_weight: Decimal = Decimal("0.1")
    measured_at: str | None = None  # free text: where/when the throughput was measured

    @model_validator(mode="after")
    def _one_throughput(self) -> SelfHostedPrice:
        if (self.throughput_tokens_per_s is None) == (self.requests_per_hour is None):
            raise ValueError("give exactly one of throughput_tokens_per_s, requests_per_hour")
        if not Decimal(0) < self.utilisation <= Decimal(1):
            raise ValueError("utilisation must be in (0, 1]")
        return self


class PricingConfig(_Model):
    """How a model is priced. Default: genai-prices' catalog for the upstream model."""

    mode: Literal["catalog", "custom", "self_hosted"] = "catalog"
    catalog_model: str | None = None  # model ref in genai-prices (default: upstream_model)
    catalog_provider: str | None = None  # genai-prices provider id (default: by provider)
    discount_pct: Decimal = Decimal(0)  # negotiated discount applied on top of any mode
    custom: tuple[CustomPrice, ...] = ()
    self_hosted: SelfHostedPrice | None = None

    @model_validator(mode="after")
    def _mode_has_data(self) -> PricingConfig:
        if self.mode == "custom" and not self.custom:
            raise ValueError("pricing.mode=custom needs at least one entry under 'custom'")
        if self.mode == "self_hosted" and self.self_hosted is None:
            raise ValueError("pricing.mode=self_hosted needs a 'self_hosted' section")
        if not Decimal(0) <= self.discount_pct < Decimal(100):
            raise ValueError("discount_pct must be in [0, 100)")
        return self


class EndpointConfig(_Model):
    """One upstream deployment that can serve a model."""

    id: str | None = None  # shown in records; default: api_base
    provider: Literal["openai", "anthropic"] = "openai"
    api_base: str
    upstream_model: str | None = None  # default: the public model name
    api_key_env: str | None = None  # env var with the upstream key; never the key itself
    api_key_header: str | None = None  # e.g. "api-key" for Azure; default per provider
    query_params: dict[str, str] = Field(default_factory=dict)  # e.g. Azure api-version
    weight: int = 1

    @property
    def name(self) -> str:
        return self.id or self.api_base


class ModelConfig(_Model):
    name: str
    endpoints: tuple[EndpointConfig, ...]
    pricing: PricingConfig = PricingConfig()
    fallbacks: tuple[str, ...] = ()
    max_output_tokens: int | None = None  # bound used when a request gives no max_tokens

    @model_validator(mode="after")
    def _has_endpoint(self) -> ModelConfig:
        if not self.endpoints:
            raise ValueError(f"model {self.name!r} has no endpoints")
        return self


class RetryConfig(_Model):
    max_attempts: int = 3  # per client request, fallbacks included
    backoff_base_s: float = 0.05
    backoff_max_s: float = 2.0
    # 529: Anthropic's "overloaded_error", its most common transient failure.
    retry_statuses: tuple[int, ...] = (408, 409, 429, 500, 502, 503, 504, 529)


class HealthConfig(_Model):
    failures_to_eject: int = 3  # consecutive failures before an endpoint is ejected
    eject_seconds: float = 15.0  # first ejection; doubles while failures go on


class GatewayConfig(_Model):
    host: str = "127.0.0.1"
    port: int = 4000
    admin_key_env: str = "COSTWARDEN_ADMIN_KEY"
    max_body_bytes: int = 8 * 1024 * 1024
    connect_timeout_s: float = 5.0
    request_timeout_s: float = 600.0  # whole upstream call; streams: between chunks
    unknown_model_pricing: Literal["reject", "record_unknown"] = "reject"
    default_max_output_tokens: int = 4096  # estimate bound when a request gives none
    key_cache_ttl_s: float = 5.0  # how long a key lookup is trusted (revocation delay)
    # GET /openapi.json without a key: no secrets, but it names the configured models.
    openapi: bool = True
    retry: RetryConfig = RetryConfig()
    health: HealthConfig = HealthConfig()


class LedgerConfig(_Model):
    backend: Literal["sqlite", "postgres"] = "sqlite"
    sqlite_path: str = "costwarden.db"
    postgres_dsn: str | None = None
    spool_dir: str = "var/spool"
    batch_size: int = 500
    flush_interval_s: float = 0.2
    fsync_interval_s: float = 1.0

    @model_validator(mode="after")
    def _dsn_for_postgres(self) -> LedgerConfig:
        if self.backend == "postgres" and not self.postgres_dsn:
            raise ValueError("ledger.backend=postgres needs ledger.postgres_dsn")
        return self


class Settings(_Model):
    gateway: GatewayConfig = GatewayConfig()
    ledger: LedgerConfig = LedgerConfig()
    models: tuple[ModelConfig, ...] = ()
    policy: PolicyConfig = PolicyConfig()
    state: StateConfig = StateConfig()
    savings: SavingsConfig = SavingsConfig()
    alerts: AlertsConfig = AlertsConfig()  # no sinks: alerts only kept in the ledger's log
    dashboard: DashboardConfig = DashboardConfig()  # /dashboard, admin-key login
    batch: BatchConfig = BatchConfig()  # deferred work: queue, workers, Batch API
    monitor: MonitorConfig = MonitorConfig()  # rollups, anomaly watch, price watch
    metrics: MetricsConfig = MetricsConfig()  # GET /metrics on; OpenTelemetry spans off
    distill: DistillConfig = DistillConfig()  # pair capture for fine-tuning: off
    demo: bool = False  # serving the built-in fake upstream; labelled "simulated"

    @model_validator(mode="after")
    def _unique_models(self) -> Settings:
        names = [m.name for m in self.models]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"model names must be unique: {sorted(dupes)}")
        known = set(names)
        for m in self.models:
            missing = [f for f in m.fallbacks if f not in known]
            if missing:
                raise ValueError(f"model {m.name!r} falls back to unknown models {missing}")
        self._check_policy_models(known)
        check_cascade_models(self.savings.cascades, self._provider_of)
        check_router_models(self.savings.routers, self._provider_of)
        return self

    def _provider_of(self, name: str) -> str | None:
        model = self.model(name)
        return model.endpoints[0].provider if model is not None else None

    def _check_policy_models(self, known: set[str]) -> None:
        """Pins and environment maps must lead to configured models (fail at start-up)."""
        targets = {f"pins.{alias}": model for alias, model in self.policy.pins.items()}
        for env, rule in self.policy.environments.items():
            targets.update(
                {f"environments.{env}.model_map.{k}": v for k, v in rule.model_map.items()}
            )
        unknown = {where: model for where, model in targets.items() if model not in known}
        if unknown:
            raise ValueError(f"policy names models that are not configured: {unknown}")

    def model(self, name: str) -> ModelConfig | None:
        for m in self.models:
            if m.name == name:
                return m
        return None


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(text: str, environ: dict[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(f"config refers to ${{{name}}} but it is not set")

    return _ENV_REF.sub(sub, text)


def settings_from_dict(data: dict[str, Any]) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise ConfigError(str(exc)) from exc


def _expand_values(value: Any, environ: dict[str, str]) -> Any:
    """Substitute in string values only, so comments and keys are never touched."""
    if isinstance(value, str):
        return _expand_env(value, environ)
    if isinstance(value, dict):
        return {k: _expand_values(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_values(v, environ) for v in value]
    return value


def load_settings(path: str | Path, environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return settings_from_dict(_expand_values(data, env))
