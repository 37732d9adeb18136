"""Typed settings of the savings stages (the ``savings:`` section of the config file).

Kept free of the stages' own imports so that ``costwarden.config`` can include it without
loading numpy or onnxruntime."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from costwarden.savings.cascade.config import CascadeConfig
from costwarden.savings.router.config import RouterConfig
from costwarden.savings.semantic.config import SemanticCacheConfig
from costwarden.savings.trimming.config import TrimmingConfig


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExactCacheConfig(_Model):
    enabled: bool = False
    # deterministic: temperature 0 / embeddings, or opted in by header; opt_in: header only;
    # all: every request (only for callers who accept a repeated sampled answer).
    mode: Literal["deterministic", "opt_in", "all"] = "deterministic"
    ttl_s: float = Field(default=3600.0, gt=0)
    isolation: Literal["team", "user", "key", "global"] = "team"
    backend: Literal["memory", "redis"] | None = None  # None: where the counters live
    max_entries: int = Field(default=10_000, gt=0)  # in process
    max_answer_bytes: int = Field(default=1 << 20, gt=0)  # larger answers are not kept


class SavingsConfig(_Model):
    trimming: TrimmingConfig = TrimmingConfig()
    exact_cache: ExactCacheConfig = ExactCacheConfig()
    semantic_cache: SemanticCacheConfig = SemanticCacheConfig()
    cascades: tuple[CascadeConfig, ...] = ()
    routers: tuple[RouterConfig, ...] = ()

    @field_validator("cascades")
    @classmethod
    def _unique_cascades(cls, cascades: tuple[CascadeConfig, ...]) -> tuple[CascadeConfig, ...]:
        names = [c.name for c in cascades]
        if len(set(names)) != len(names):
            raise ValueError(f"cascade names must be unique: {names}")
        return cascades
