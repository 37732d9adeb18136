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
from dataclasses import dataclass
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
_PRINCIPAL_FIELD = {"team": "team", "user": "user", "key": "key_id"}
# An answer's JSON per token is far below this (a token is ~4 characters of text, escaped at
# most 6 bytes each, plus the usage and envelope); above it the entry is measured.
_MAX_BYTES_PER_TOKEN = 64


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A stored answer and what it cost when it was made."""

    answer: dict[str, Any]
    cost: str | None  # exact decimal text; None: the original answer's price was unknown
    tokens: int
    request_id: str
    stored_at: float  # time.time()

    def to_json(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def from_json(cls, data: bytes) -> CacheEntry:
        return cls(**orjson.loads(data))


class CacheStore(Protocol):
    async def get(self, key: str) -> CacheEntry | None: ...

    async def put(self, key: str, entry: CacheEntry, ttl_s: float) -> None: ...

    async def close(self) -> None: ...


class MemoryCacheStore:
    """LRU entries with an expiry, in this process, kept as objects: no encoding either way
    (measured: the JSON round trip was a third of a miss's stage time)."""

    def __init__(self, max_entries: int, clock: Any = time.monotonic) -> None:
        self._entries: OrderedDict[str, tuple[float, CacheEntry]] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    async def get(self, key: str) -> CacheEntry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def put(self, key: str, entry: CacheEntry, ttl_s: float) -> None:
        self._entries[key] = (self._clock() + ttl_s, entry)
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

    async def get(self, key: str) -> CacheEntry | None:
        value = await self._redis.get(self._prefix + key)
        return CacheEntry.from_json(value) if isinstance(value, bytes) else None

    async def put(self, key: str, entry: CacheEntry, ttl_s: float) -> None:
        value = entry.to_json()
        await self._redis.set(self._prefix + key, value, px=max(1, int(ttl_s * 1000)))

    async def close(self) -> None:
        await self._redis.aclose()


def scope_of(record: UsageRecord, isolation: str) -> str:
    """Who may share entries: the record's team, user or key, or everyone."""
    principal = record.principal
    if isolation == "global" or principal is None:
        return "*"
    value = getattr(principal, _PRINCIPAL_FIELD[isolation])
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


def new_entry(answer: dict[str, Any], record: UsageRecord) -> CacheEntry:
    cost = str(record.cost) if record.cost is not None else None
    return CacheEntry(answer, cost, record.usage.total_tokens, record.request_id, time.time())


def encode_entry(answer: dict[str, Any], record: UsageRecord) -> bytes:
    return new_entry(answer, record).to_json()


def _decimal(text: str | None) -> Decimal | None:
    return Decimal(text) if text is not None else None


def saving_from_entry(kind: str, entry: dict[str, Any], detail: str) -> Saving:
    """The saving of serving a decoded ``encode_entry`` document."""
    return Saving(kind, _decimal(entry.get("cost")), int(entry.get("tokens") or 0), detail)


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
        entry = await self._store.get(key)
        if entry is None:
            ex.keep_answer = True
            ex.notes[_NOTE] = key
            return None
        age = time.time() - entry.stored_at
        detail = f"answer of {entry.request_id}, {age:.0f} s old"
        saving = Saving(_NOTE, _decimal(entry.cost), entry.tokens, detail)
        return Reply(entry.answer, saving, hit_headers("hit-exact"))

    async def on_answer(self, ex: Exchange, answer: dict[str, Any]) -> None:
        key = ex.notes.get(_NOTE)
        if key is None or ex.record.status is not Status.OK:
            return
        entry = new_entry(answer, ex.record)
        if self._fits(ex.api, entry):
            await self._store.put(key, entry, self._config.ttl_s)

    def _fits(self, api: str, entry: CacheEntry) -> bool:
        # Measuring an answer costs its encoding: only answers that may be large are measured
        # (embeddings always: their size is in the vectors, not in the tokens).
        limit = self._config.max_answer_bytes
        if api != EMBEDDINGS and entry.tokens * _MAX_BYTES_PER_TOKEN <= limit:
            return True
        return len(entry.to_json()) <= limit

    async def close(self) -> None:
        await self._store.close()
