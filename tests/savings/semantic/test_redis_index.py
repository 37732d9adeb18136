"""The Redis vector index, on the real server: two cache instances ("replicas") share it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest
from redis.asyncio import Redis

from costwarden.savings.embedding import EmbeddingPool, MiniLMEmbedder
from costwarden.savings.semantic.cache import SemanticCache, build_check
from costwarden.savings.semantic.config import SemanticCacheConfig
from costwarden.savings.semantic.index import IndexEntry
from costwarden.savings.semantic.redis_index import RedisVectorIndex
from tests.savings.semantic.support import Clock, key


@pytest.fixture(scope="module")
def pool() -> Iterator[EmbeddingPool]:
    embeddings = EmbeddingPool(MiniLMEmbedder())
    yield embeddings
    embeddings.close()


@pytest.fixture
async def prefix(redis_url: str, redis_key_prefix: str) -> AsyncIterator[str]:
    mine = f"{redis_key_prefix}:{uuid.uuid4().hex}"
    yield mine
    client = Redis.from_url(redis_url)
    stale = [k async for k in client.scan_iter(match=f"*{mine}*")]
    if stale:
        await client.delete(*stale)
    await client.aclose()


def replica(redis_url: str, prefix: str, pool: EmbeddingPool, clock: Clock) -> SemanticCache:
    config = SemanticCacheConfig(enabled=True, backend="redis", ttl_s=60)
    index = RedisVectorIndex.from_url(redis_url, prefix, config.ttl_s)
    return SemanticCache(config, index, pool, build_check(config), clock)


async def test_an_answer_stored_by_one_replica_is_served_by_another(
    redis_url: str, prefix: str, pool: EmbeddingPool
) -> None:
    clock = Clock()
    first, second = (replica(redis_url, prefix, pool, clock) for _ in range(2))
    try:
        lookup = await first.lookup(key("How do I reset my password?"))
        await first.store(lookup, b"answer")
        hit = (await second.lookup(key("How can I reset my password?"))).hit
        assert hit is not None and hit.entry.payload == b"answer"
        assert hit.entry.text == "How do I reset my password?"
        assert (await second.lookup(key("How can I reset my password?", team="other"))).hit is None
        clock.now += 61
        assert (await second.lookup(key("How can I reset my password?"))).hit is None
    finally:
        await first.aclose()
        await second.aclose()


def entry(n: int, vector: np.ndarray, at: float) -> IndexEntry:
    return IndexEntry(f"e{n}", vector.astype(np.float32), f"text {n}", b"%d" % n, at)


async def test_redis_index_evicts_the_oldest_and_expires_keys(redis_url: str, prefix: str) -> None:
    index = RedisVectorIndex.from_url(redis_url, prefix, ttl_s=30)
    unit = np.eye(4, dtype=np.float32)
    try:
        for n in range(3):
            await index.add("s", entry(n, unit[n], 100.0 + n), max_entries=2, not_before=0)
        found = await index.search("s", unit[0], k=5, min_similarity=-1, not_before=0)
        assert sorted(c.entry.entry_id for c in found) == ["e1", "e2"]
        best = await index.search("s", unit[2], k=1, min_similarity=0.5, not_before=0)
        assert [(c.entry.entry_id, c.entry.payload, round(c.similarity, 3)) for c in best] == [
            ("e2", b"2", 1.0)
        ]
        assert await index.search("s", unit[2], k=5, min_similarity=-1, not_before=102.5) == []
        client = Redis.from_url(redis_url)
        ttls = [await client.pttl(k) async for k in client.scan_iter(match=f"*{prefix}*")]
        await client.aclose()
        assert len(ttls) == 3 and all(0 < t <= 30_000 for t in ttls)
    finally:
        await index.aclose()
