"""Typed settings for the batch runner (the ``batch`` section of ``Settings``).

Kept free of heavy imports so ``costwarden.config`` stays light. The queue lives in its own
database by default (see ``docs/batch.md`` for why): a SQLite file next to the ledger, or a
PostgreSQL database (the ledger's, when ``postgres_dsn`` is not given) for many workers on many
machines.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatchApiConfig(_Model):
    """The provider Batch API path (OpenAI's ``/v1/files`` + ``/v1/batches``)."""

    max_items: int = Field(default=5000, ge=1)  # items per provider batch (OpenAI: ≤ 50,000)
    completion_window: str = "24h"
    poll_interval_s: float = Field(default=10.0, gt=0)
    # What a provider bills Batch API usage at, in percent off its list price, used when the
    # price catalog has no batch price of its own for the model (genai-prices carries batch
    # variants for many OpenAI and Anthropic models; those win). Data, not code: a provider
    # that changes its discount is a config change.
    discount_pct: dict[str, Decimal] = Field(
        default_factory=lambda: {"openai": Decimal(50), "anthropic": Decimal(50)}
    )

    @model_validator(mode="after")
    def _discounts_in_range(self) -> BatchApiConfig:
        bad = {k: v for k, v in self.discount_pct.items() if not Decimal(0) <= v < Decimal(100)}
        if bad:
            raise ValueError(f"batch.batch_api.discount_pct must be in [0, 100): {bad}")
        return self


class BatchConfig(_Model):
    backend: Literal["sqlite", "postgres"] = "sqlite"
    sqlite_path: str = "costwarden-batch.db"
    postgres_dsn: str | None = None  # default: ledger.postgres_dsn
    default_mode: Literal["direct", "batch_api"] = "direct"
    lease_s: float = Field(default=60.0, gt=0)  # an item held this long without a heartbeat
    heartbeat_s: float = Field(default=10.0, gt=0)  # is taken back from its (dead) worker
    max_attempts: int = Field(default=5, ge=1)  # per item, killed workers' tries included
    backoff_base_s: float = Field(default=1.0, ge=0)  # retry n waits base * 2**(n-1), capped
    backoff_max_s: float = Field(default=300.0, ge=0)
    failure_budget: float = Field(default=0.01, ge=0, le=1)  # default share of failed items
    concurrency: int = Field(default=16, ge=1)  # requests in flight per worker (direct mode)
    notice_s: float = Field(default=30.0, ge=0)  # SIGTERM: drain within this, then release
    reconcile_after_s: float = Field(default=30.0, ge=0)  # see worker.py: ledger catch-up
    gateway_priority_values: tuple[str, ...] = ("batch", "low")
    # Worker loops run inside each gateway process, on its own policy counters: how the
    # embedded default (in-process counters) enforces budgets on batch items. Off by default:
    # a gateway that never queues work should neither create nor poll a queue database.
    gateway_workers: int = Field(default=0, ge=0)
    # Longest pause of a job whose item a budget refused before its items are tried again
    # (shorter when the refusal says so): how soon a raised budget or a new period is seen.
    budget_pause_s: float = Field(default=60.0, gt=0)
    batch_api: BatchApiConfig = BatchApiConfig()

    @model_validator(mode="after")
    def _heartbeat_inside_lease(self) -> BatchConfig:
        if self.heartbeat_s >= self.lease_s:
            raise ValueError("batch.heartbeat_s must be shorter than batch.lease_s")
        return self
