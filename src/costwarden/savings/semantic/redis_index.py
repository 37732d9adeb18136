"""The semantic cache's index in Redis, shared by every gateway replica.

Redis 7 without modules has no vector search, so each scope is three keys under one hash tag
(one cluster slot): ``vec`` (hash id → float16 vector bytes), ``meta`` (hash id → msgpack of
text, payload, created_at) and ``order`` (sorted set id → created_at). A search is one script
call returning the live ids and their vectors; the client computes the cosines with numpy and
fetches the metadata of the few candidates above the threshold (a second round trip only when
there is one). The scan stays on the client rather than in Lua because Lua has no vector ops:
a scope of 1,000 entries would hold the single-threaded server for milliseconds per lookup,
while numpy does it in microseconds. Scopes are small (one model, system prompt, team and
conversation prefix each), and float16 halves what travels; it moves a cosine by < 0.001.

Adding is one script: store, drop expired and over-limit entries, and set the keys' expiry to
the TTL so an idle scope disappears on its own.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
from redis.asyncio import Redis

from costwarden.savings.embedding import Vectors
from costwarden.savings.semantic.index import Candidate, IndexEntry, top_k

_SEARCH = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[1], '+inf')
if #ids == 0 then return {ids, {}} end
return {ids, redis.call('HMGET', KEYS[1], unpack(ids))}
"""

_ADD = """
local id = ARGV[1]
redis.call('HSET', KEYS[1], id, ARGV[2])
redis.call('HSET', KEYS[2], id, ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], id)
local drop = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[6])
local live = redis.call('ZCARD', KEYS[3]) - #drop
local max = tonumber(ARGV[5])
if live > max then
  local oldest = redis.call('ZRANGE', KEYS[3], #drop, #drop + live - max - 1)
  for _, old in ipairs(oldest) do table.insert(drop, old) end
end
for _, old in ipairs(drop) do
  redis.call('HDEL', KEYS[1], old)
  redis.call('HDEL', KEYS[2], old)
  redis.call('ZREM', KEYS[3], old)
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[7]) end
return #drop
"""


class RedisVectorIndex:
    def __init__(self, client: Redis, key_prefix: str, ttl_s: float) -> None:
        self._redis = client
        self._prefix = key_prefix
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._search = client.register_script(_SEARCH)
        self._add = client.register_script(_ADD)

    @classmethod
    def from_url(cls, url: str, key_prefix: str, ttl_s: float) -> RedisVectorIndex:
        return cls(Redis.from_url(url), key_prefix, ttl_s)

    def _keys(self, scope: str) -> list[str]:
        tag = "{" + self._prefix + ":" + scope + "}"
        return [tag + ":vec", tag + ":meta", tag + ":order"]

    async def search(
        self, scope: str, vector: Vectors, *, k: int, min_similarity: float, not_before: float
    ) -> list[Candidate]:
        keys = self._keys(scope)
        ids, blobs = await self._search(keys=keys, args=[repr(not_before)])
        pairs = [(_text(i), b) for i, b in zip(ids, blobs, strict=True) if b is not None]
        if not pairs:
            return []
        matrix = np.stack([np.frombuffer(b, dtype=np.float16) for _, b in pairs])
        best = top_k(matrix.astype(np.float32), vector, k, min_similarity)
        if not best:
            return []
        chosen = [pairs[row][0] for row, _ in best]
        metas: list[bytes | None] = await self._redis.hmget(keys[1], chosen)  # type: ignore[assignment]
        out = []
        for (row, sim), meta in zip(best, metas, strict=True):
            if meta is None:  # evicted between the two calls
                continue
            out.append(Candidate(_entry(pairs[row][0], matrix[row], meta), sim))
        return out

    async def add(
        self, scope: str, entry: IndexEntry, *, max_entries: int, not_before: float
    ) -> None:
        meta = msgpack.packb({"t": entry.text, "p": entry.payload, "c": entry.created_at})
        await self._add(
            keys=self._keys(scope),
            args=[
                entry.entry_id,
                entry.vector.astype(np.float16).tobytes(),
                meta,
                repr(entry.created_at),
                max_entries,
                repr(not_before),
                self._ttl_ms,
            ],
        )

    async def aclose(self) -> None:
        await self._redis.aclose()


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _entry(entry_id: str, vector: Any, meta: bytes) -> IndexEntry:
    data = msgpack.unpackb(meta)
    return IndexEntry(
        entry_id=entry_id,
        vector=np.asarray(vector, dtype=np.float32),
        text=str(data["t"]),
        payload=bytes(data["p"]),
        created_at=float(data["c"]),
    )
