"""Nearest neighbours on prompt embeddings: how did both models do on prompts like this one?

Benchmarks (and real traffic) are full of prompts from one template or one source: the same
instruction with other numbers, the same passage with another question. The k most similar
training prompts (cosine, on L2-normalised rows) vote with weight exp(similarity / temperature),
so a near-duplicate outweighs a merely related prompt; the vote is shrunk toward the training
mean by ``prior`` pseudo-votes (in units of one exact duplicate's vote), so a prompt with no
close neighbours gets the average estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Vectors = npt.NDArray[np.float32]
# Queries are scored in blocks: a block × train similarity matrix stays a few MB.
_BLOCK = 512


@dataclass(frozen=True, slots=True)
class KnnSettings:
    k: int = 32
    temperature: float = 0.05
    prior: float = 0.1  # pseudo-votes for the training mean (a duplicate casts 1)


@dataclass(frozen=True, slots=True)
class KnnHead:
    vectors: Vectors  # (n, dim), L2-normalised
    weak: Floats
    strong: Floats
    settings: KnnSettings

    def _block(self, queries: Vectors) -> tuple[Floats, Floats]:
        sims = (queries @ self.vectors.T).astype(np.float64)
        k = min(self.settings.k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        # A duplicate (similarity 1) casts one vote; ``prior`` counts in those units. The
        # exponent stays >= -2/temperature, far from float64 underflow for sane temperatures.
        votes = np.exp((top_sims - 1.0) / self.settings.temperature)
        prior = self.settings.prior
        total = votes.sum(axis=1) + prior
        p_weak = (votes * self.weak[top]).sum(axis=1) + prior * float(self.weak.mean())
        p_strong = (votes * self.strong[top]).sum(axis=1) + prior * float(self.strong.mean())
        return p_weak / total, p_strong / total

    def predict(self, queries: Vectors) -> tuple[Floats, Floats]:
        """(P(weak right), P(strong right)) per query row."""
        parts = [self._block(queries[i : i + _BLOCK]) for i in range(0, len(queries), _BLOCK)]
        if not parts:
            return np.zeros(0), np.zeros(0)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
