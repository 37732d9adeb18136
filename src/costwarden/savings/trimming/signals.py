"""The per-claim inputs of the trimming evaluation, computed once: dense cosines (of the
passage, and of its best sentence), BM25 scores (over the candidates and with corpus
statistics) and token counts of every candidate.

Embeddings of the whole SciFact corpus take minutes on a small machine; they are cached on
disk (``router_cache.cached_embeddings``) under a name that includes the truncation length,
since the same model truncated differently gives different rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from costwarden.pricing.tokens import TokenCounter
from costwarden.savings.embedding import Embedder, MiniLMEmbedder, Vectors
from costwarden.savings.router.cache import cached_embeddings
from costwarden.savings.trimming.bm25 import Bm25Index, Bm25Params, CorpusStats, Scores, tokenize
from costwarden.savings.trimming.config import DenseUnit
from costwarden.savings.trimming.scifact import Abstract, Candidates
from costwarden.savings.trimming.sentences import split_sentences


class TruncatedMiniLM:
    """MiniLM named with its truncation length, so cached rows of 128 and 256 never mix."""

    def __init__(self, max_tokens: int) -> None:
        self._inner = MiniLMEmbedder(max_tokens=max_tokens)
        self._name = f"{self._inner.name}@{max_tokens}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._inner.dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        return self._inner.embed(texts)

    def embed_batched(self, texts: Sequence[str], batch_size: int = 64) -> Vectors:
        return self._inner.embed_batched(texts, batch_size=batch_size)


@dataclass(frozen=True, slots=True)
class ClaimSignals:
    """Everything a ranking and a keep policy need about one claim's candidates."""

    candidates: Candidates
    dense: Scores  # cosine of the claim to each passage (as truncated by the embedder)
    dense_sentence: Scores  # ... to each passage's best sentence (``split_sentences``)
    bm25_local: Scores  # statistics from the candidates alone (what a gateway has)
    bm25_corpus: Scores  # statistics from the 5,183-abstract corpus
    tokens: tuple[int, ...]
    # cosine of the claim to each sentence of each passage, in order (for two-stage ranking)
    sentence_cosines: tuple[Scores, ...] = ()

    @property
    def evidence(self) -> tuple[int, ...]:
        return self.candidates.evidence_positions

    def dense_lead(self, lead: int) -> Scores:
        """Cosine to each passage's best sentence among its first ``lead``."""
        return np.asarray(
            [float(c[:lead].max(initial=-1.0)) for c in self.sentence_cosines], dtype=np.float64
        )

    def dense_for(self, unit: DenseUnit) -> Scores:
        return self.dense_sentence if unit == "sentence" else self.dense


@dataclass(frozen=True, slots=True)
class EvalVectors:
    claims: Mapping[int, Vectors]  # claim id → its row
    passages: Mapping[int, Vectors]  # doc id → the passage's row
    sentences: Mapping[int, Vectors]  # doc id → one row per sentence of the passage


def embed_all(
    corpus: Mapping[int, Abstract],
    sets: Sequence[Candidates],
    embedder: Embedder,
    cache_dir: Path | None,
) -> EvalVectors:
    """Rows of every claim, every corpus passage and every sentence of a candidate passage."""
    doc_ids = sorted(corpus)
    rows = cached_embeddings(embedder, [corpus[d].text for d in doc_ids], cache_dir, 32)
    claim_rows = cached_embeddings(embedder, [c.claim.text for c in sets], cache_dir, 64)
    needed = sorted({d for c in sets for d in c.doc_ids})
    split = {d: split_sentences(corpus[d].text) for d in needed}
    flat = [s for d in needed for s in split[d]]
    sentence_rows = cached_embeddings(embedder, flat, cache_dir, 64)
    sentences: dict[int, Vectors] = {}
    start = 0
    for d in needed:
        sentences[d] = sentence_rows[start : start + len(split[d])]
        start += len(split[d])
    return EvalVectors(
        claims={c.claim.claim_id: claim_rows[i] for i, c in enumerate(sets)},
        passages={d: rows[i] for i, d in enumerate(doc_ids)},
        sentences=sentences,
    )


def compute_signals(
    sets: Sequence[Candidates],
    corpus: Mapping[int, Abstract],
    vectors: EvalVectors,
    *,
    stats: CorpusStats,
    model: str,
) -> list[ClaimSignals]:
    counter = TokenCounter()
    params = Bm25Params()
    needed = {d for c in sets for d in c.doc_ids}
    terms = {d: tokenize(corpus[d].text) for d in needed}
    counts = {d: counter.count(model, corpus[d].text) for d in needed}
    out: list[ClaimSignals] = []
    for cand in sets:
        docs = [terms[d] for d in cand.doc_ids]
        query = tokenize(cand.claim.text)
        claim = vectors.claims[cand.claim.claim_id]
        matrix = np.stack([vectors.passages[d] for d in cand.doc_ids])
        cosines = tuple((vectors.sentences[d] @ claim).astype(np.float64) for d in cand.doc_ids)
        best = [float(c.max(initial=-1.0)) for c in cosines]
        out.append(
            ClaimSignals(
                candidates=cand,
                dense=(matrix @ claim).astype(np.float64),
                dense_sentence=np.asarray(best, dtype=np.float64),
                bm25_local=Bm25Index(docs, params).score(query),
                bm25_corpus=Bm25Index(docs, params, stats).score(query),
                tokens=tuple(counts[d] for d in cand.doc_ids),
                sentence_cosines=cosines,
            )
        )
    return out
