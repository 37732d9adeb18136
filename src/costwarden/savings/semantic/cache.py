"""The semantic cache: a question close enough in meaning to one already answered, in the same
scope, gets the stored answer.

A lookup embeds the request's last user message (``semantic_request`` says exactly what, and
what the scope holds) on the embedding pool's threads, asks the ``VectorIndex`` for the best
candidates of the scope at or above the cosine ``threshold`` and younger than the TTL, and
runs the second-stage check (``semantic_check``) on each, best first: the first one accepted
is the hit. A miss keeps the vector so that storing the answer needs no second embedding.

The gateway stage (``semantic_stage``) is a thin adapter around this class.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from costwarden.savings.embedding import EmbeddingPool, Vectors
from costwarden.savings.semantic.check import SecondStageCheck, Verdict, shipped_model
from costwarden.savings.semantic.config import SemanticCacheConfig
from costwarden.savings.semantic.index import (
    Candidate,
    IndexEntry,
    MemoryVectorIndex,
    VectorIndex,
)
from costwarden.savings.semantic.redis_index import RedisVectorIndex
from costwarden.savings.semantic.request import CacheKey
from costwarden.savings.semantic.text import profile


@dataclass(frozen=True, slots=True)
class Hit:
    entry: IndexEntry
    similarity: float
    probability: float | None  # the check model's, when it ran


@dataclass(frozen=True, slots=True)
class Lookup:
    key: CacheKey
    vector: Vectors
    hit: Hit | None
    rejected: tuple[str, ...]  # why candidates above the threshold were turned down


def build_check(config: SemanticCacheConfig) -> SecondStageCheck | None:
    if not config.second_stage:
        return None
    return SecondStageCheck(
        shipped_model(),
        require_same_numbers=config.require_same_numbers,
        min_probability=config.min_check_probability,
    )


def build_index(config: SemanticCacheConfig, redis_url: str | None, key_prefix: str) -> VectorIndex:
    """The in-process index, or the Redis one when configured (shared by replicas)."""
    if config.backend == "redis":
        if redis_url is None:
            raise ValueError("semantic_cache.backend=redis needs a Redis URL")
        return RedisVectorIndex.from_url(redis_url, key_prefix + ":semantic", config.ttl_s)
    return MemoryVectorIndex()


class SemanticCache:
    def __init__(
        self,
        config: SemanticCacheConfig,
        index: VectorIndex,
        pool: EmbeddingPool,
        check: SecondStageCheck | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._index = index
        self._pool = pool
        self._check = check
        self._clock = clock

    async def lookup(self, key: CacheKey) -> Lookup:
        vector = (await self._pool.embed_async([key.text]))[0]
        candidates = await self._index.search(
            key.scope,
            vector,
            k=self._config.candidates,
            min_similarity=self._config.threshold,
            not_before=self._clock() - self._config.ttl_s,
        )
        hit, rejected = self._first_accepted(key.text, candidates)
        return Lookup(key, vector, hit, rejected)

    def _first_accepted(
        self, text: str, candidates: list[Candidate]
    ) -> tuple[Hit | None, tuple[str, ...]]:
        rejected: list[str] = []
        query = profile(text) if candidates and self._check is not None else None
        for candidate in candidates:
            verdict = (
                self._check.judge(query, profile(candidate.entry.text), candidate.similarity)
                if self._check is not None and query is not None
                else Verdict(True, None, "ok")
            )
            if verdict.accepted:
                return Hit(candidate.entry, candidate.similarity, verdict.probability), tuple(
                    rejected
                )
            rejected.append(verdict.reason)
        return None, tuple(rejected)

    async def store(self, lookup: Lookup, payload: bytes) -> None:
        """Keep ``payload`` (the answer) for the looked-up question."""
        now = self._clock()
        entry = IndexEntry(
            entry_id=os.urandom(8).hex(),
            vector=lookup.vector,
            text=lookup.key.text,
            payload=payload,
            created_at=now,
        )
        await self._index.add(
            lookup.key.scope,
            entry,
            max_entries=self._config.max_entries_per_scope,
            not_before=now - self._config.ttl_s,
        )

    async def aclose(self) -> None:
        await self._index.aclose()
