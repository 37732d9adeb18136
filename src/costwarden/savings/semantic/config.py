"""Settings of the semantic cache (``savings.semantic_cache`` in the config file).

Pydantic only, no numpy: ``costwarden.config`` includes it without loading the embedder.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SemanticCacheConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    # Cosine of the query embeddings at or above which a stored entry is a candidate. The
    # default is the one chosen on STS-B train with the check on (docs/savings.md).
    threshold: float = Field(default=0.88, gt=0, le=1)
    ttl_s: float = Field(default=3600.0, gt=0)
    max_entries_per_scope: int = Field(default=1000, gt=0, le=5000)  # oldest dropped first
    isolation: Literal["team", "user", "key", "global"] = "team"
    # The second-stage check (lexical features + logistic model) on each candidate.
    second_stage: bool = True
    # Override of the shipped model's probability cut (None: the one chosen on STS-B train).
    min_check_probability: float | None = Field(default=None, ge=0, le=1)
    # Different numbers veto a hit even when the model would accept it.
    require_same_numbers: bool = True
    candidates: int = Field(default=4, gt=0, le=50)  # best-first candidates checked per lookup
    # MiniLM reads at most 256 tokens: two longer queries differing only past that would look
    # identical, so longer ones are neither looked up nor stored.
    max_query_chars: int = Field(default=1000, gt=0)
    # Sampled answers are cached too by default (a near-duplicate question gets a fitting
    # answer); "deterministic" limits the cache to temperature 0 like the exact cache.
    mode: Literal["all", "deterministic"] = "all"
    backend: Literal["memory", "redis"] | None = None  # None: where the counters live
    max_answer_bytes: int = Field(default=1 << 20, gt=0)
