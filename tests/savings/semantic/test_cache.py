"""The semantic cache library on the in-process index, with the real MiniLM embedder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from costwarden.savings.embedding import EmbeddingPool, MiniLMEmbedder
from costwarden.savings.semantic.cache import SemanticCache, build_check
from costwarden.savings.semantic.config import SemanticCacheConfig
from costwarden.savings.semantic.index import MemoryVectorIndex
from tests.savings.semantic.support import Clock, key

RESET = "How do I reset my password?"


@pytest.fixture(scope="module")
def pool() -> Iterator[EmbeddingPool]:
    embeddings = EmbeddingPool(MiniLMEmbedder())
    yield embeddings
    embeddings.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_cache(pool: EmbeddingPool, clock: Clock, **options: object) -> SemanticCache:
    config = SemanticCacheConfig(enabled=True, **options)  # type: ignore[arg-type]
    return SemanticCache(config, MemoryVectorIndex(), pool, build_check(config), clock)


@pytest.fixture
async def cache(pool: EmbeddingPool, clock: Clock) -> AsyncIterator[SemanticCache]:
    made = make_cache(pool, clock)
    yield made
    await made.aclose()


async def remember(cache: SemanticCache, question: str, answer: bytes, **scope: object) -> None:
    lookup = await cache.lookup(key(question, **scope))  # type: ignore[arg-type]
    assert lookup.hit is None
    await cache.store(lookup, answer)


async def test_a_paraphrase_hits_and_an_unrelated_question_misses(cache: SemanticCache) -> None:
    await remember(cache, RESET, b"answer-1")
    hit = (await cache.lookup(key("How can I reset my password?"))).hit
    assert hit is not None and hit.entry.payload == b"answer-1"
    assert hit.similarity > 0.95 and hit.probability is not None
    assert (await cache.lookup(key("What is the capital of France?"))).hit is None


async def test_the_threshold_decides_what_is_a_candidate(pool: EmbeddingPool, clock: Clock) -> None:
    # cosine("How do I…", "How can I…") is 0.99: a 0.995 threshold leaves it out.
    strict = make_cache(pool, clock, threshold=0.995, second_stage=False)
    await remember(strict, RESET, b"a")
    assert (await strict.lookup(key("How can I reset my password?"))).hit is None
    assert (await strict.lookup(key(RESET))).hit is not None
    loose = make_cache(pool, clock, threshold=0.5, second_stage=False)
    await remember(loose, "Summarise the plot of Hamlet", b"a")
    assert (await loose.lookup(key("Summarise the plot of Macbeth"))).hit is not None


async def test_the_second_stage_rejects_different_numbers(
    pool: EmbeddingPool, clock: Clock
) -> None:
    checked = make_cache(pool, clock, threshold=0.5)
    await remember(checked, "What is 15% of 80?", b"12")
    lookup = await checked.lookup(key("What is 15% of 90?"))
    assert lookup.hit is None and lookup.rejected == ("numbers",)
    unchecked = make_cache(pool, clock, threshold=0.5, second_stage=False)
    await remember(unchecked, "What is 15% of 80?", b"12")
    assert (await unchecked.lookup(key("What is 15% of 90?"))).hit is not None


async def test_days_and_months_must_agree_but_may_the_verb_is_no_month(
    pool: EmbeddingPool, clock: Clock
) -> None:
    checked = make_cache(pool, clock, threshold=0.5)
    await remember(checked, "Stocks to watch at close on Monday", b"monday")
    lookup = await checked.lookup(key("Stocks to watch at close on Thursday"))
    assert lookup.hit is None and lookup.rejected == ("numbers",)
    await remember(checked, "May I return my order?", b"yes")
    assert (await checked.lookup(key("may i return my order"))).hit is not None


async def test_the_second_stage_rejects_a_negation_and_another_name(
    pool: EmbeddingPool, clock: Clock
) -> None:
    checked = make_cache(pool, clock, threshold=0.5)
    await remember(checked, RESET, b"a")
    negated = await checked.lookup(key("How do I not reset my password?"))
    assert negated.hit is None and negated.rejected == ("model",)
    await remember(checked, "Summarise the plot of Hamlet", b"a")
    assert (await checked.lookup(key("Summarise the plot of Macbeth"))).hit is None


@pytest.mark.parametrize(
    "other",
    [
        {"team": "finance"},
        {"model": "gpt-4o-mini"},
        {"system": "Answer in French."},
        {"history": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
    ],
)
async def test_another_scope_never_hits(cache: SemanticCache, other: dict[str, object]) -> None:
    await remember(cache, RESET, b"a")
    assert (await cache.lookup(key(RESET, **other))).hit is None  # type: ignore[arg-type]
    assert (await cache.lookup(key(RESET))).hit is not None


async def test_a_conversation_hits_only_with_the_same_earlier_turns(cache: SemanticCache) -> None:
    history = [{"role": "user", "content": "I use Gmail."}, {"role": "assistant", "content": "OK."}]
    await remember(cache, RESET, b"gmail", history=history)
    same = (await cache.lookup(key("How can I reset my password?", history=history))).hit
    assert same is not None and same.entry.payload == b"gmail"
    assert (await cache.lookup(key(RESET))).hit is None


async def test_entries_expire_after_the_ttl(pool: EmbeddingPool, clock: Clock) -> None:
    cache = make_cache(pool, clock, ttl_s=60)
    await remember(cache, RESET, b"a")
    clock.now += 59
    assert (await cache.lookup(key(RESET))).hit is not None
    clock.now += 2
    assert (await cache.lookup(key(RESET))).hit is None


async def test_a_full_scope_drops_its_oldest_entry(pool: EmbeddingPool, clock: Clock) -> None:
    cache = make_cache(pool, clock, max_entries_per_scope=2)
    for question in (RESET, "What is the capital of France?", "Why is the sky blue?"):
        await remember(cache, question, question.encode())
        clock.now += 1
    assert (await cache.lookup(key(RESET))).hit is None
    kept = (await cache.lookup(key("Why is the sky blue?"))).hit
    assert kept is not None and kept.entry.payload == b"Why is the sky blue?"
