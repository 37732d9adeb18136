"""Exact cache: the same request again gets the stored answer, with no upstream call.

The key is the normalised request: the API, the model it resolves from, the environment tag,
the isolation scope (team by default: one team never reads another's answers) and the body with
the fields that do not change the answer left out (``stream``, ``stream_options``, ``user``,
``metadata``), as canonical JSON, hashed. A streamed and a non-streamed request therefore share
an entry; the pipeline replays a hit as SSE when the client asked for a stream.

Only deterministic requests are cached by default — ``temperature: 0`` with one choice, and
embeddings — because a sampled answer served twice is not what a caller asked for. A caller
opts in for a sampled request with ``x-costwarden-cache: on`` and out with ``off`` (neither
read nor written). A hit is recorded with no attempt and cost 0, and a ``cache_exact`` saving
of the original answer's cost and tokens.

Entries live in this process (the embedded default, LRU-bounded) or in Redis, shared by all
replicas, with the TTL as the key's expiry.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from decimal import Decimal
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis

from costwarden.providers.base import EMBEDDINGS
from costwarden.records import Saving, Status, UsageRecord
from costwarden.savings.config import ExactCacheConfig
from costwarden.savings.stages import BaseStage, Exchange, Reply

CACHE_HEADER = b"x-costwarden-cache"
_NOT_IN_KEY = frozenset(("stream", "stream_options", "user", "metadata"))
_NOTE = "cache_exact"


class CacheStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def close(self) -> None: ...


class MemoryCacheStore:
    """LRU entries with an expiry, in this process."""

    def __init__(self, max_entries: int, clock: Any = time.monotonic) -> None:
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        self._entries[key] = (self._clock() + ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def close(self) -> None:
        self._entries.clear()


class RedisCacheStore:
    """Entries in Redis under ``{<prefix>}:cache:<digest>``, shared by every replica."""

    def __init__(self, url: str, prefix: str) -> None:
        self._redis: Redis = Redis.from_url(url)
        self._prefix = "{" + prefix + "}:cache:"

    async def get(self, key: str) -> bytes | None:
        value = await self._redis.get(self._prefix + key)
        return value if isinstance(value, bytes) else None

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._redis.set(self._prefix + key, value, px=max(1, int(ttl_s * 1000)))

    async def close(self) -> None:
        await self._redis.aclose()


def scope_of(record: UsageRecord, isolation: str) -> str:
    """Who may share entries: the record's team, user or key, or everyone."""
    principal = record.principal
    if isolation == "global" or principal is None:
        return "*"
    value = {"team": principal.team, "user": principal.user, "key": principal.key_id}[isolation]
    # A key without a team shares only with itself, never with every team-less key.
    return f"{isolation}={value}" if value else f"key={principal.key_id}"


def request_key(ex: Exchange, isolation: str) -> str:
    stable = {k: v for k, v in ex.payload.items() if k not in _NOT_IN_KEY}
    head = (ex.api, ex.model, ex.record.tags.env, scope_of(ex.record, isolation))
    canonical = orjson.dumps([head, stable], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=20).hexdigest()


def is_deterministic(api: str, payload: dict[str, Any]) -> bool:
    if api == EMBEDDINGS:
        return True
    return payload.get("temperature") == 0 and payload.get("n", 1) == 1


def encode_entry(answer: dict[str, Any], record: UsageRecord) -> bytes:
    return orjson.dumps(
        {
            "answer": answer,
            "cost": str(record.cost) if record.cost is not None else None,
            "tokens": record.usage.total_tokens,
            "model": record.resolved_model,
            "request_id": record.request_id,
            "stored_at": time.time(),
        }
    )


def saving_from_entry(kind: str, entry: dict[str, Any], detail: str) -> Saving:
    cost = entry.get("cost")
    return Saving(
        kind=kind,
        cost_saved=Decimal(cost) if cost is not None else None,
        tokens_saved=int(entry.get("tokens") or 0),
        detail=detail,
    )


def hit_headers(kind: str) -> tuple[tuple[bytes, bytes], ...]:
    return ((b"x-costwarden-cache", kind.encode()),)


class ExactCacheStage(BaseStage):
    name = _NOTE

    def __init__(self, config: ExactCacheConfig, store: CacheStore) -> None:
        self._config = config
        self._store = store

    def _wanted(self, ex: Exchange) -> bool:
        choice = ex.header(CACHE_HEADER)
        if choice == "off":
            return False
        if choice == "on" or self._config.mode == "all":
            return True
        return self._config.mode == "deterministic" and is_deterministic(ex.api, ex.payload)

    async def on_request(self, ex: Exchange) -> Reply | None:
        if ex.executor is not None or not self._wanted(ex):
            return None
        key = request_key(ex, self._config.isolation)
        stored = await self._store.get(key)
        if stored is None:
            ex.keep_answer = True
            ex.notes[_NOTE] = key
            return None
        entry = orjson.loads(stored)
        age = time.time() - float(entry.get("stored_at") or 0)
        detail = f"answer of {entry.get('request_id')}, {age:.0f} s old"
        saving = saving_from_entry(_NOTE, entry, detail)
        return Reply(entry["answer"], saving, hit_headers("hit-exact"))

    async def on_answer(self, ex: Exchange, answer: dict[str, Any]) -> None:
        key = ex.notes.get(_NOTE)
        if key is None or ex.record.status is not Status.OK:
            return
        value = encode_entry(answer, ex.record)
        if len(value) <= self._config.max_answer_bytes:
            await self._store.put(key, value, self._config.ttl_s)

    async def close(self) -> None:
        await self._store.close()
