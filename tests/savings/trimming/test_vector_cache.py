"""The passage embedding cache: each text embedded once, rows identical to a fresh embedding,
bounded with least-recently-used eviction."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from costwarden.savings.embedding import EmbeddingPool, Vectors, normalise
from costwarden.savings.trimming.vector_cache import VectorCache, embed_in_batches


class _CountingEmbedder:
    """Deterministic rows (a hash of the text) and a log of what was embedded."""

    name = "counting"
    dim = 8

    def __init__(self) -> None:
        self.seen: list[str] = []

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.seen.extend(texts)
        rows = np.asarray(
            [[(hash(t) >> shift) & 0xFF for shift in range(0, 64, 8)] for t in texts],
            dtype=np.float32,
        )
        return normalise(rows + 1.0)


@pytest.fixture
def embedder() -> _CountingEmbedder:
    return _CountingEmbedder()


@pytest.fixture
def pool(embedder: _CountingEmbedder) -> Iterator[EmbeddingPool]:
    pool = EmbeddingPool(embedder, threads=1)
    yield pool
    pool.close()


async def test_each_text_is_embedded_once(embedder: _CountingEmbedder, pool: EmbeddingPool) -> None:
    cache = VectorCache(max_entries=100)
    first = await cache.embed(pool, "q1", ["a", "b", "c"])
    second = await cache.embed(pool, "q2", ["b", "c", "d"])
    assert sorted(embedder.seen) == ["a", "b", "c", "d", "q1", "q2"]
    assert np.array_equal(second[1:3], first[2:4])
    assert np.array_equal(second, embedder.embed(["q2", "b", "c", "d"]))
    assert len(cache) == 4  # the queries are not kept


async def test_least_recently_used_is_evicted(
    embedder: _CountingEmbedder, pool: EmbeddingPool
) -> None:
    cache = VectorCache(max_entries=2)
    await cache.embed(pool, "q", ["a", "b"])
    await cache.embed(pool, "q", ["a"])  # "a" is now the most recent
    await cache.embed(pool, "q", ["c"])  # evicts "b"
    embedder.seen.clear()
    rows = await cache.embed(pool, "q", ["a", "b", "c"])
    assert sorted(embedder.seen) == ["b", "q"]
    assert np.array_equal(rows, embedder.embed(["q", "a", "b", "c"]))


async def test_zero_entries_caches_nothing(
    embedder: _CountingEmbedder, pool: EmbeddingPool
) -> None:
    cache = VectorCache(max_entries=0)
    await cache.embed(pool, "q", ["a"])
    await cache.embed(pool, "q", ["a"])
    assert sorted(embedder.seen) == ["a", "a", "q", "q"]
    assert len(cache) == 0


async def test_batches_come_back_in_the_callers_order(
    embedder: _CountingEmbedder, pool: EmbeddingPool
) -> None:
    texts = [f"text {'x' * (n % 7)} {n}" for n in range(70)]
    rows = await embed_in_batches(pool, texts, batch_size=8)
    assert np.array_equal(rows, embedder.embed(texts))
