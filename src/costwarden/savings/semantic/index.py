"""Vector indexes for the semantic cache: the ``VectorIndex`` seam and the in-process default.

An index holds entries per *scope* (one opaque string: model, isolation, system prompt, earlier
turns, parameters; see ``semantic_request``) and searches only within one scope, so a scope is
small and an exact scan beats any approximate structure. Entries older than the TTL are never
returned; past ``max_entries`` a scope drops its oldest entries.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from costwarden.savings.embedding import Vectors


@dataclass(frozen=True, slots=True)
class IndexEntry:
    entry_id: str
    vector: Vectors  # shape (dim,), L2-normalised
    text: str  # what was embedded: the second-stage check compares it with the new query
    payload: bytes  # opaque to the index (the cached answer and what it cost)
    created_at: float  # unix seconds


@dataclass(frozen=True, slots=True)
class Candidate:
    entry: IndexEntry
    similarity: float


class VectorIndex(Protocol):
    async def search(
        self, scope: str, vector: Vectors, *, k: int, min_similarity: float, not_before: float
    ) -> list[Candidate]:
        """Up to ``k`` entries of ``scope`` created at or after ``not_before`` whose cosine
        with ``vector`` is at least ``min_similarity``, most similar first."""
        ...

    async def add(
        self, scope: str, entry: IndexEntry, *, max_entries: int, not_before: float
    ) -> None:
        """Store ``entry``; drop entries older than ``not_before`` and, past ``max_entries``,
        the oldest ones."""
        ...

    async def aclose(self) -> None: ...


def top_k(
    matrix: Vectors, vector: Vectors, k: int, min_similarity: float
) -> list[tuple[int, float]]:
    """(row, cosine) of the best ``k`` rows at or above ``min_similarity``, best first."""
    if len(matrix) == 0:
        return []
    sims = matrix @ vector
    order = np.argsort(-sims, kind="stable")[:k]
    return [(int(i), float(sims[i])) for i in order if sims[i] >= min_similarity]


@dataclass(slots=True)
class _Scope:
    entries: OrderedDict[str, IndexEntry] = field(default_factory=OrderedDict)
    matrix: Vectors | None = None  # stacked vectors, rebuilt after a change

    def stacked(self) -> Vectors:
        if self.matrix is None:
            self.matrix = np.stack([e.vector for e in self.entries.values()]).astype(np.float32)
        return self.matrix


class MemoryVectorIndex:
    """One process's index (the embedded default). Used from the event loop only, so no lock:
    no ``await`` sits between reading and changing a scope."""

    def __init__(self) -> None:
        self._scopes: dict[str, _Scope] = {}

    async def search(
        self, scope: str, vector: Vectors, *, k: int, min_similarity: float, not_before: float
    ) -> list[Candidate]:
        held = self._scopes.get(scope)
        if held is None:
            return []
        self._expire(scope, held, not_before)
        if not held.entries:
            return []
        entries = list(held.entries.values())
        return [
            Candidate(entries[row], sim)
            for row, sim in top_k(held.stacked(), vector, k, min_similarity)
        ]

    async def add(
        self, scope: str, entry: IndexEntry, *, max_entries: int, not_before: float
    ) -> None:
        held = self._scopes.setdefault(scope, _Scope())
        held.entries.pop(entry.entry_id, None)
        held.entries[entry.entry_id] = entry
        while len(held.entries) > max_entries:
            held.entries.popitem(last=False)
        held.matrix = None
        self._expire(scope, held, not_before)

    def _expire(self, scope: str, held: _Scope, not_before: float) -> None:
        # Entries are in insertion order, so the expired ones are at the front.
        while held.entries:
            first = next(iter(held.entries.values()))
            if first.created_at >= not_before:
                break
            held.entries.popitem(last=False)
            held.matrix = None
        if not held.entries:
            del self._scopes[scope]

    def __len__(self) -> int:
        return sum(len(s.entries) for s in self._scopes.values())

    async def aclose(self) -> None:
        self._scopes.clear()
