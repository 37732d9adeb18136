"""The semantic cache stage on the ``stages`` seam: a miss asks for the answer and stores it, a
paraphrase is answered from it with a ``cache_semantic`` saving; ``off`` skips it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from costwarden.records import Status, TokenUsage
from costwarden.savings.embedding import EmbeddingPool, MiniLMEmbedder
from costwarden.savings.semantic.cache import SemanticCache, build_check
from costwarden.savings.semantic.config import SemanticCacheConfig
from costwarden.savings.semantic.index import MemoryVectorIndex
from costwarden.savings.semantic.stage import SemanticCacheStage
from costwarden.savings.stages import Exchange
from tests.savings.semantic.support import chat, record

ANSWER: dict[str, Any] = {"id": "c1", "object": "chat.completion", "choices": []}


@pytest.fixture
async def stage() -> AsyncIterator[SemanticCacheStage]:
    pool = EmbeddingPool(MiniLMEmbedder())
    config = SemanticCacheConfig(enabled=True)
    made = SemanticCacheStage(
        config, SemanticCache(config, MemoryVectorIndex(), pool, build_check(config))
    )
    yield made
    await made.close()
    pool.close()


def exchange(question: str, headers: dict[bytes, bytes] | None = None) -> Exchange:
    return Exchange(
        api="chat.completions",
        payload=chat(question),
        model="gpt-4o",
        stream=False,
        record=record(),
        headers=headers or {},
    )


async def test_a_miss_stores_the_answer_and_a_paraphrase_is_served(
    stage: SemanticCacheStage,
) -> None:
    first = exchange("How do I reset my password?")
    assert await stage.on_request(first) is None and first.keep_answer
    first.record.cost = Decimal("0.0042")
    first.record.usage = TokenUsage(input_tokens=30, output_tokens=70)
    await stage.on_answer(first, ANSWER)

    reply = await stage.on_request(exchange("How can I reset my password?"))
    assert reply is not None and reply.answer == ANSWER
    assert reply.saving.kind == "cache_semantic"
    assert reply.saving.cost_saved == Decimal("0.0042")
    assert reply.saving.tokens_saved == first.record.usage.total_tokens
    assert reply.saving.detail is not None and reply.saving.detail.startswith("cosine 0.99")
    assert (b"x-costwarden-cache", b"hit-semantic") in reply.headers


async def test_failed_answers_are_not_stored_and_off_skips_the_cache(
    stage: SemanticCacheStage,
) -> None:
    failed = exchange("Why is the sky blue?")
    await stage.on_request(failed)
    failed.record.status = Status.UPSTREAM_ERROR
    await stage.on_answer(failed, ANSWER)
    assert await stage.on_request(exchange("Why is the sky blue?")) is None

    skipped = exchange("Why is the sky blue?", {b"x-costwarden-cache": b"off"})
    assert await stage.on_request(skipped) is None and not skipped.keep_answer
