"""The semantic cache as a savings stage (see ``stages``): a thin adapter over ``SemanticCache``.

``on_request`` answers a hit with the stored answer (the pipeline replays it as SSE for a
streamed request) and a ``cache_semantic`` saving of the original answer's cost and tokens,
with the cosine and check probability as detail. A miss asks for the answer and keeps the
lookup (its vector) in ``ex.notes``; ``on_answer`` stores it. Entries are encoded as the exact
cache encodes them, so both caches read the same shape. ``x-costwarden-cache: off`` skips it.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from costwarden.records import Status
from costwarden.savings.exact_cache import (
    CACHE_HEADER,
    encode_entry,
    hit_headers,
    is_deterministic,
    saving_from_entry,
)
from costwarden.savings.semantic.cache import Hit, Lookup, SemanticCache, build_check, build_index
from costwarden.savings.semantic.config import SemanticCacheConfig
from costwarden.savings.semantic.request import cache_key
from costwarden.savings.services import StageServices
from costwarden.savings.stages import BaseStage, Exchange, Reply

_NOTE = "cache_semantic"


class SemanticCacheStage(BaseStage):
    name = _NOTE

    def __init__(self, config: SemanticCacheConfig, cache: SemanticCache) -> None:
        self._config = config
        self._cache = cache

    @classmethod
    def from_services(
        cls, config: SemanticCacheConfig, services: StageServices
    ) -> SemanticCacheStage:
        state = services.settings.state
        backend = config.backend or state.backend
        index = build_index(
            config.model_copy(update={"backend": backend}), state.redis_url, state.key_prefix
        )
        cache = SemanticCache(config, index, services.embeddings(), build_check(config))
        return cls(config, cache)

    def _wanted(self, ex: Exchange) -> bool:
        if ex.executor is not None or ex.header(CACHE_HEADER) == "off":
            return False
        return self._config.mode == "all" or is_deterministic(ex.api, ex.payload)

    async def on_request(self, ex: Exchange) -> Reply | None:
        if not self._wanted(ex):
            return None
        key = cache_key(
            ex.api,
            ex.model,
            ex.payload,
            ex.record,
            isolation=self._config.isolation,
            max_query_chars=self._config.max_query_chars,
        )
        if key is None:
            return None
        lookup = await self._cache.lookup(key)
        if lookup.hit is None:
            ex.keep_answer = True
            ex.notes[_NOTE] = lookup
            return None
        return _reply(lookup.hit)

    async def on_answer(self, ex: Exchange, answer: dict[str, Any]) -> None:
        lookup = ex.notes.get(_NOTE)
        if not isinstance(lookup, Lookup) or ex.record.status is not Status.OK:
            return
        value = encode_entry(answer, ex.record)
        if len(value) <= self._config.max_answer_bytes:
            await self._cache.store(lookup, value)

    async def close(self) -> None:
        await self._cache.aclose()


def _reply(hit: Hit) -> Reply:
    entry = orjson.loads(hit.entry.payload)
    age = time.time() - float(entry.get("stored_at") or 0)
    probability = f", check p={hit.probability:.2f}" if hit.probability is not None else ""
    detail = (
        f"cosine {hit.similarity:.3f}{probability} to answer of "
        f"{entry.get('request_id')}, {age:.0f} s old"
    )
    saving = saving_from_entry(_NOTE, entry, detail)
    return Reply(entry["answer"], saving, hit_headers("hit-semantic"))
