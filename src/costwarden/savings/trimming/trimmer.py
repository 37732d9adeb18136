"""RAG context trimming: re-rank a request's passages against its question, keep the best.

A retrieval step usually hands the model far more context than it needs (top-20 or top-50
chunks "to be safe"); input tokens are most of such a request's bill. The trimmer re-ranks
the passages against the question and keeps the best few under a keep policy:

- ``top_k``: at most this many passages;
- ``max_tokens``: at most this many passage tokens (counted with the gateway's
  ``TokenCounter`` for the request's model). Filled greedily in rank order: a passage that
  does not fit is skipped and the next one tried, so the budget is never exceeded;
- ``cutoff``: only passages whose score is within ``cutoff`` of the best one's (scores are on
  the fusion's scale, see below), so a question with one clear answer sends one passage and
  an ambiguous one sends several. ``min_keep`` passages are kept whatever the cut-off says;
- ``sentences_per_passage``: each kept passage cut to its best sentences (by cosine), in
  their original order; the limits above then count the cut passages' tokens.

Ranking (``TrimConfig.ranking``): ``dense`` is MiniLM cosine, ``bm25`` is Okapi BM25 over
the candidates (or a corpus's statistics, ``CorpusStats``), ``hybrid`` fuses both. The dense
score of a passage (``TrimConfig.dense_unit``) is its own cosine (the embedder reads its first
128-256 tokens) or its best sentence's. Fusion (``TrimConfig.fusion``):

- ``zscore``: each signal standardised over the candidates, then a weighted sum. The score
  is "standard deviations above the average candidate", so a cut-off reads the same across
  requests with different score ranges;
- ``minmax``: each signal scaled to [0, 1] over the candidates, then a weighted sum;
- ``rrf``: reciprocal rank fusion, sum of weight / (rrf_k + rank), scaled by (rrf_k + 1) so
  the best possible score is 1. Rank-only: a cut-off on it is a cut-off on ranks.

Two stages (``TrimConfig.rerank_top``, the default): embedding every sentence of ~50 passages
takes seconds on a CPU, so the best-sentence cosine is computed only where it can matter. Every
passage is ranked first with the best cosine of its first ``lead_sentences`` sentences (its
title or heading: one short text per passage) fused with BM25; the best ``rerank_top`` of that
ranking then have all their sentences embedded and are ranked among themselves exactly as the
one-stage ranking ranks a request of those passages (``rerank``). The rest follow, at least 1
below the lowest of them, in the first ranking's order; with sentence-level trimming such a
passage is cut to its best embedded (lead) sentences.

The choice of defaults is measured on SciFact (``costwarden eval trimming``, docs/savings.md).

Kept passages come back best first (``TrimResult.kept``), which puts the strongest evidence
where models attend most; ``TrimResult.kept_in_original_order`` gives the caller's order.
Embedding is the only costly step: ``trim_async`` runs it on an ``EmbeddingPool`` so the
event loop never waits on it; ranking and the policy are plain numpy on ~50 numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from costwarden.pricing.tokens import TokenCounter
from costwarden.savings.embedding import Embedder, EmbeddingPool, Vectors
from costwarden.savings.trimming.bm25 import Bm25Index, Bm25Params, CorpusStats, Scores, tokenize
from costwarden.savings.trimming.config import Fusion, KeepPolicy, TrimConfig
from costwarden.savings.trimming.sentences import keep_best_sentences, split_sentences
from costwarden.savings.trimming.vector_cache import VectorCache, embed_in_batches


@dataclass(frozen=True, slots=True)
class Ranked:
    """Candidates ranked best first: ``order[0]`` is the index of the best passage."""

    order: tuple[int, ...]
    scores: Scores  # fused score of each passage, by original index


@dataclass(frozen=True, slots=True)
class TrimResult:
    """What the trimmer kept, and the passage tokens before and after."""

    passages: tuple[str, ...]
    texts: tuple[str, ...]  # what to send of each passage: itself, or its best sentences
    kept: tuple[int, ...]  # indices into ``passages``, best first
    scores: Scores
    tokens_before: int  # of all the passages, whole
    tokens_after: int  # of the texts kept

    @property
    def kept_passages(self) -> list[str]:
        return [self.texts[i] for i in self.kept]

    @property
    def kept_in_original_order(self) -> list[str]:
        return [self.texts[i] for i in sorted(self.kept)]

    @property
    def tokens_saved(self) -> int:
        return self.tokens_before - self.tokens_after


def dense_scores(question: Vectors, passages: Vectors) -> Scores:
    """Cosine of each passage to the question (rows are L2-normalised)."""
    return (passages @ question.reshape(-1)).astype(np.float64)


def bm25_scores(
    question: str,
    passages: Sequence[str],
    params: Bm25Params,
    stats: CorpusStats | None = None,
) -> Scores:
    index = Bm25Index([tokenize(p) for p in passages], params, stats)
    return index.score(tokenize(question))


def _zscore(values: Scores) -> Scores:
    spread = float(values.std())
    if spread < 1e-12:
        return np.zeros_like(values)
    result: Scores = (values - values.mean()) / spread
    return result


def _minmax(values: Scores) -> Scores:
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-12:
        return np.zeros_like(values)
    result: Scores = (values - low) / (high - low)
    return result


def _reciprocal_ranks(values: Scores, rrf_k: int) -> Scores:
    ranks = np.empty(len(values), dtype=np.float64)
    # Stable sort: equal scores keep the caller's order, as everywhere else here.
    ranks[np.argsort(-values, kind="stable")] = np.arange(1, len(values) + 1)
    result: Scores = (rrf_k + 1.0) / (rrf_k + ranks)
    return result


def fuse(signals: Sequence[tuple[Scores, float]], fusion: Fusion, rrf_k: int) -> Scores:
    """Weighted fusion of score vectors over the same candidates; ``signals``: (scores, weight)."""
    total = np.zeros(len(signals[0][0]), dtype=np.float64)
    for values, weight in signals:
        if fusion == "zscore":
            total += weight * _zscore(values)
        elif fusion == "minmax":
            total += weight * _minmax(values)
        else:
            total += weight * _reciprocal_ranks(values, rrf_k)
    return total


def rank_scores(config: TrimConfig, dense: Scores | None, lexical: Scores | None) -> Ranked:
    """Rank from the signals ``config.ranking`` uses (the other may be None)."""
    signals: list[tuple[Scores, float]] = []
    if config.ranking != "bm25":
        if dense is None:
            raise ValueError(f"{config.ranking} ranking needs embeddings")
        signals.append((dense, 1.0 if config.ranking == "dense" else config.dense_weight))
    if config.ranking != "dense":
        if lexical is None:
            raise ValueError(f"{config.ranking} ranking needs BM25 scores")
        weight = 1.0 if config.ranking == "bm25" else 1.0 - config.dense_weight
        signals.append((lexical, weight))
    scores = fuse(signals, config.fusion, config.rrf_k)
    order = tuple(int(i) for i in np.argsort(-scores, kind="stable"))
    return Ranked(order=order, scores=scores)


def rerank(config: TrimConfig, first: Ranked, dense: Scores, lexical: Scores | None) -> Ranked:
    """The second stage: the best ``config.rerank_top`` passages of ``first`` ranked by
    ``rank_scores`` over themselves alone (``dense`` and ``lexical`` are read at their
    indices), the others after them in ``first``'s order, scored from 1 below the lowest."""
    if config.rerank_top is None or config.rerank_top >= len(first.order):
        return rank_scores(config, dense, lexical)
    top = np.asarray(first.order[: config.rerank_top], dtype=np.int64)
    inner = rank_scores(config, dense[top], lexical[top] if lexical is not None else None)
    rest = first.order[config.rerank_top :]
    scores = np.empty(len(first.order), dtype=np.float64)
    scores[top] = inner.scores
    floor = float(inner.scores.min()) - 1.0
    scores[list(rest)] = floor - np.arange(len(rest), dtype=np.float64) / len(rest)
    order = tuple(int(top[i]) for i in inner.order) + rest
    return Ranked(order=order, scores=scores)


def select(ranked: Ranked, token_counts: Sequence[int], policy: KeepPolicy) -> tuple[int, ...]:
    """Indices to keep, best first, under ``policy`` (see the module docstring)."""
    if not ranked.order:
        return ()
    floor = None
    if policy.cutoff is not None:
        floor = float(ranked.scores[ranked.order[0]]) - policy.cutoff
    kept: list[int] = []
    used = 0
    for index in ranked.order:
        if policy.top_k is not None and len(kept) >= policy.top_k:
            break
        below = floor is not None and float(ranked.scores[index]) < floor
        if below and len(kept) >= policy.min_keep:
            break
        if policy.max_tokens is not None and used + token_counts[index] > policy.max_tokens:
            continue  # too big for what is left: a smaller, lower-ranked one may still fit
        kept.append(index)
        used += token_counts[index]
    return tuple(kept)


@dataclass(frozen=True, slots=True)
class EmbeddingPlan:
    """What to embed after the question: the passages, or their sentences (``owners[i]`` is
    the passage of sentence ``i``). With two stages, ``first`` is the first stage's ranking
    once it is known: ``texts`` then hold the lead sentences of every passage followed by the
    other sentences of the passages the second stage ranks."""

    texts: tuple[str, ...]
    owners: npt.NDArray[np.int64] | None
    first: Ranked | None = None
    lexical: Scores | None = None  # the BM25 scores the first stage used


def two_stage(config: TrimConfig) -> bool:
    return (
        config.rerank_top is not None
        and config.dense_unit == "sentence"
        and config.ranking != "bm25"
    )


def embedding_plan(config: TrimConfig, passages: Sequence[str]) -> EmbeddingPlan:
    """The first embedding: every passage, every sentence of every passage, or (two stages)
    each passage's first ``lead_sentences`` sentences."""
    if config.dense_unit == "passage":
        return EmbeddingPlan(tuple(passages), None)
    lead = config.lead_sentences if two_stage(config) else None
    texts: list[str] = []
    owners: list[int] = []
    for index, passage in enumerate(passages):
        sentences = split_sentences(passage)[:lead]
        texts.extend(sentences)
        owners.extend([index] * len(sentences))
    return EmbeddingPlan(tuple(texts), np.asarray(owners, dtype=np.int64))


def second_plan(
    config: TrimConfig, passages: Sequence[str], first: Ranked
) -> tuple[tuple[str, ...], list[int]]:
    """The second embedding of two stages: the sentences past the lead of each passage the
    second stage ranks (texts, and the passage of each)."""
    assert config.rerank_top is not None
    texts: list[str] = []
    owners: list[int] = []
    for index in first.order[: config.rerank_top]:
        rest = split_sentences(passages[index])[config.lead_sentences :]
        texts.extend(rest)
        owners.extend([index] * len(rest))
    return tuple(texts), owners


def dense_from_cosines(cosines: Scores, plan: EmbeddingPlan, n_passages: int) -> Scores:
    """Cosine of each passage to the question: its own, or its best sentence's."""
    if plan.owners is None:
        return cosines
    best = np.full(n_passages, -1.0, dtype=np.float64)  # a passage with no text: the minimum
    np.maximum.at(best, plan.owners, cosines)
    return best


class PassageTrimmer:
    """Re-ranks and trims passages for one configuration; holds no per-request state."""

    def __init__(
        self,
        config: TrimConfig,
        tokens: TokenCounter,
        stats: CorpusStats | None = None,
    ) -> None:
        self.config = config
        self._tokens = tokens
        self._stats = stats

    @property
    def needs_embeddings(self) -> bool:
        return self.config.ranking != "bm25"

    def plan(self, passages: Sequence[str]) -> EmbeddingPlan:
        """The first embedding (see ``embedding_plan``)."""
        return embedding_plan(self.config, passages)

    def _lexical(self, question: str, passages: Sequence[str]) -> Scores | None:
        if self.config.ranking == "dense":
            return None
        params = Bm25Params(k1=self.config.bm25_k1, b=self.config.bm25_b)
        return bm25_scores(question, passages, params, self._stats)

    def next_plan(
        self, question: str, passages: Sequence[str], plan: EmbeddingPlan, vectors: Vectors
    ) -> tuple[EmbeddingPlan, tuple[str, ...]]:
        """Two stages: after the first embedding (``vectors``: the question, then ``plan``'s
        texts), the first ranking and the texts to embed next; their rows go after
        ``vectors``' for the returned plan."""
        assert plan.owners is not None
        cosines = dense_scores(vectors[0], vectors[1:])
        lead = dense_from_cosines(cosines, plan, len(passages))
        lexical = self._lexical(question, passages)
        first = rank_scores(self.config, lead, lexical)
        texts, owners = second_plan(self.config, passages, first)
        merged = np.concatenate([plan.owners, np.asarray(owners, dtype=np.int64)])
        return EmbeddingPlan(plan.texts + texts, merged, first, lexical), texts

    def trim_with_vectors(
        self,
        question: str,
        passages: Sequence[str],
        model: str,
        vectors: Vectors | None,
        policy: KeepPolicy | None = None,
        *,
        plan: EmbeddingPlan | None = None,
    ) -> TrimResult:
        """Trim with embeddings already made: row 0 the question, then one row per text of
        ``plan`` (default ``plan(passages)``; with two stages, the one ``next_plan`` returned);
        None for a bm25-only ranking."""
        if not passages:
            return TrimResult((), (), (), np.zeros(0, dtype=np.float64), 0, 0)
        policy = policy or self.config.policy
        plan = plan or self.plan(passages)
        if two_stage(self.config) and plan.first is None:
            raise ValueError("two-stage ranking needs the plan of next_plan")
        cosines = dense_scores(vectors[0], vectors[1:]) if vectors is not None else None
        dense = dense_from_cosines(cosines, plan, len(passages)) if cosines is not None else None
        lexical = plan.lexical if plan.first is not None else self._lexical(question, passages)
        if plan.first is not None and dense is not None:
            ranked = rerank(self.config, plan.first, dense, lexical)
        else:
            ranked = rank_scores(self.config, dense, lexical)
        texts = list(passages)
        if policy.sentences_per_passage is not None:
            if plan.owners is None or cosines is None:
                raise ValueError("keeping sentences needs dense_unit 'sentence'")
            texts = keep_best_sentences(
                plan.texts, cosines, plan.owners, len(passages), policy.sentences_per_passage
            )
        whole = [self._tokens.count(model, p) for p in passages]
        counts = whole
        if policy.sentences_per_passage is not None:
            counts = [self._tokens.count(model, t) for t in texts]
        kept = select(ranked, counts, policy)
        return TrimResult(
            passages=tuple(passages),
            texts=tuple(texts),
            kept=kept,
            scores=ranked.scores,
            tokens_before=sum(whole),
            tokens_after=sum(counts[i] for i in kept),
        )

    def trim(
        self,
        question: str,
        passages: Sequence[str],
        model: str,
        embedder: Embedder | None,
        policy: KeepPolicy | None = None,
    ) -> TrimResult:
        """Trim on the calling thread (scripts, evaluations)."""
        vectors = None
        plan = None
        if self.needs_embeddings and passages:
            if embedder is None:
                raise ValueError(f"{self.config.ranking} ranking needs an embedder")
            plan = self.plan(passages)
            vectors = embedder.embed([question, *plan.texts])
            if two_stage(self.config):
                plan, more = self.next_plan(question, passages, plan, vectors)
                if more:
                    vectors = np.concatenate([vectors, embedder.embed(more)])
        return self.trim_with_vectors(question, passages, model, vectors, policy, plan=plan)

    async def trim_async(
        self,
        question: str,
        passages: Sequence[str],
        model: str,
        pool: EmbeddingPool | None,
        policy: KeepPolicy | None = None,
        *,
        cache: VectorCache | None = None,
    ) -> TrimResult:
        """Trim with the embedding on ``pool``'s threads, off the event loop; texts already
        in ``cache`` are not embedded again."""
        vectors = None
        plan = None
        if self.needs_embeddings and passages:
            if pool is None:
                raise ValueError(f"{self.config.ranking} ranking needs an embedding pool")
            plan = self.plan(passages)
            vectors = await _embed(pool, cache, question, plan.texts)
            if two_stage(self.config):
                plan, more = self.next_plan(question, passages, plan, vectors)
                if more:
                    vectors = np.concatenate([vectors, await _embed(pool, cache, None, more)])
        return self.trim_with_vectors(question, passages, model, vectors, policy, plan=plan)


async def _embed(
    pool: EmbeddingPool, cache: VectorCache | None, query: str | None, texts: Sequence[str]
) -> Vectors:
    """Rows of ``query`` (when given) then of ``texts``, through ``cache`` when there is one."""
    if cache is not None:
        return await cache.embed(pool, query, texts)
    return await embed_in_batches(pool, [*([query] if query is not None else []), *texts])
