"""What trimming adds to a request's latency, measured the way the gateway runs it.

Each request is a SciFact claim with ~50 candidate abstracts (its evidence and BM25
neighbours), trimmed with ``PassageTrimmer.trim_async`` on an ``EmbeddingPool`` of two threads,
as the stage does: "cold" with an empty vector cache (every passage embedded), "warm" with
the passages already cached from an earlier request (only the question embedded), which is
the steady state of a RAG corpus whose chunks recur.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from costwarden.pricing.tokens import TokenCounter
from costwarden.savings.embedding import Embedder, EmbeddingPool
from costwarden.savings.trimming.config import TrimConfig
from costwarden.savings.trimming.scifact import Abstract, Candidates
from costwarden.savings.trimming.trimmer import PassageTrimmer
from costwarden.savings.trimming.vector_cache import VectorCache


@dataclass(frozen=True, slots=True)
class Latency:
    ranking: str
    requests: int
    passages: float  # mean per request
    cold_ms_p50: float
    cold_ms_p90: float
    warm_ms_p50: float
    warm_ms_p90: float


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def _timed_runs(
    trimmer: PassageTrimmer,
    pool: EmbeddingPool,
    requests: Sequence[tuple[str, list[str]]],
    model: str,
) -> tuple[list[float], list[float]]:
    cold: list[float] = []
    warm: list[float] = []
    for question, passages in requests:
        cache = VectorCache(max_entries=10_000)
        for times in (cold, warm):  # the second run finds the passages in the cache
            start = time.perf_counter()
            await trimmer.trim_async(question, passages, model, pool, cache=cache)
            times.append((time.perf_counter() - start) * 1000.0)
    return cold, warm


def measure_latency(
    label: str,
    config: TrimConfig,
    embedder_factory: Callable[[], Embedder],
    sets: Sequence[Candidates],
    *,
    corpus: Mapping[int, Abstract],
    model: str,
) -> Latency:
    requests = [(c.claim.text, [corpus[d].text for d in c.doc_ids]) for c in sets]
    trimmer = PassageTrimmer(config, TokenCounter())
    pool = EmbeddingPool(embedder_factory(), threads=2)  # as the gateway's StageServices
    try:
        # One untimed request first: tokenizer and session warm-up are start-up costs.
        asyncio.run(_timed_runs(trimmer, pool, requests[:1], model))
        cold, warm = asyncio.run(_timed_runs(trimmer, pool, requests, model))
    finally:
        pool.close()
    return Latency(
        ranking=label,
        requests=len(requests),
        passages=statistics.fmean(len(p) for _, p in requests),
        cold_ms_p50=statistics.median(cold),
        cold_ms_p90=_percentile(cold, 0.9),
        warm_ms_p50=statistics.median(warm),
        warm_ms_p90=_percentile(warm, 0.9),
    )
