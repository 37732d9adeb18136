"""Embeddings of recently seen texts, so a passage sent again is not embedded again.

A RAG corpus sends the same chunks again and again, and embedding is the one costly step of
context trimming (~25-50 ms per 256-token passage on one core). Entries are keyed by a digest
of the text, not the text, and bounded (least recently used go first). One cache per stage
instance: nothing module-level.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from costwarden.savings.embedding import EmbeddingPool, Vectors

# Texts per embedding call: a call pads every text to its longest, so a request's ~500
# sentences go as length-sorted batches (measured: one batch of 50 passages' sentences took
# 28 s on a busy 2-core machine, ~10x its passages' cost, almost all of it padding).
BATCH_SIZE = 32


async def embed_in_batches(
    pool: EmbeddingPool, texts: Sequence[str], batch_size: int = BATCH_SIZE
) -> Vectors:
    """Rows for ``texts`` in their order, embedded as length-sorted batches on ``pool``'s
    threads side by side."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    chunks = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    parts = await asyncio.gather(*(pool.embed_async([texts[i] for i in c]) for c in chunks))
    rows = np.empty((len(texts), pool.embedder.dim), dtype=np.float32)
    for chunk, part in zip(chunks, parts, strict=True):
        rows[chunk] = part
    return rows


class VectorCache:
    """Rows of recently embedded texts, least recently used evicted first."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._rows: OrderedDict[bytes, Vectors] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rows)

    @staticmethod
    def _key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    async def embed(self, pool: EmbeddingPool, query: str | None, texts: Sequence[str]) -> Vectors:
        """Rows for ``query`` (none when None) then each of ``texts``; only texts not cached
        are embedded (the query always is: questions rarely repeat, and caching them would
        evict passages)."""
        head = [] if query is None else [query]
        keys = [self._key(t) for t in texts]
        rows = np.empty((len(texts) + len(head), pool.embedder.dim), dtype=np.float32)
        missing: list[int] = []
        for index, key in enumerate(keys):
            cached = self._rows.get(key)
            if cached is None:
                missing.append(index)
            else:
                self._rows.move_to_end(key)
                rows[index + len(head)] = cached
        if not head and not missing:
            return rows
        fresh = await embed_in_batches(pool, [*head, *(texts[i] for i in missing)])
        rows[: len(head)] = fresh[: len(head)]
        for row, index in enumerate(missing, start=len(head)):
            rows[index + len(head)] = fresh[row]
            self._put(keys[index], fresh[row])
        return rows

    def _put(self, key: bytes, row: Vectors) -> None:
        if self._max == 0:
            return
        self._rows[key] = row
        while len(self._rows) > self._max:
            self._rows.popitem(last=False)
