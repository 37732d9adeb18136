"""Sentence-level trimming on SciFact: evidence SENTENCE recall vs input tokens.

On top of a passage keep policy, each kept passage is cut to its best ``m`` sentences (by
MiniLM cosine to the claim, ``KeepPolicy.sentences_per_passage``), as the gateway does. The
measure is the share of the people-labelled evidence sentences (every rationale sentence of
every evidence abstract) that still reach the model, against the tokens sent over those of
every candidate whole. A title line counts as a sentence that is never evidence.

Shown as a grid on the test half (passage top-k × sentences per passage), not tuned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from costwarden.pricing.tokens import TokenCounter
from costwarden.savings.trimming.config import KeepPolicy
from costwarden.savings.trimming.evaluation import Prepared, RankerSpec, rank_claim
from costwarden.savings.trimming.scifact import Abstract
from costwarden.savings.trimming.sentences import best_sentence_indices, split_sentences
from costwarden.savings.trimming.signals import ClaimSignals, EvalVectors
from costwarden.savings.trimming.trimmer import select


@dataclass(frozen=True, slots=True)
class SentenceMetrics:
    ranking: str
    policy: str
    claims: int
    evidence_kept: float  # evidence abstracts with at least one sentence sent
    evidence_sentences_kept: float
    tokens_kept: float
    passages_kept: float


def sentence_refs(abstract: Abstract) -> list[int]:
    """For each sentence of ``split_sentences(abstract.text)``, the SciFact sentence index it
    comes from (-1: the title line)."""
    refs: list[int] = []
    for line_no, line in enumerate((abstract.title, *abstract.sentences)):
        refs.extend([line_no - 1] * len(split_sentences(line)))
    if len(refs) != len(split_sentences(abstract.text)):
        raise ValueError(f"abstract {abstract.doc_id}: a line holds a line break")
    return refs


class SentenceTrimEval:
    """Cut passages and their token counts, computed once per (abstract, sentences kept)."""

    def __init__(self, corpus: Mapping[int, Abstract], vectors: EvalVectors, model: str) -> None:
        self._corpus = corpus
        self._vectors = vectors
        self._model = model
        self._counter = TokenCounter()
        self._counts: dict[tuple[int, tuple[int, ...]], int] = {}

    def _cut(
        self, doc_id: int, claim_id: int, per_passage: int | None, whole: int
    ) -> tuple[list[int], int]:
        """(sentence indices kept, tokens of the cut passage) of one candidate; every
        sentence and the passage's own count (``whole``) when it is not cut."""
        if per_passage is None:
            return list(range(len(split_sentences(self._corpus[doc_id].text)))), whole
        scores = (self._vectors.sentences[doc_id] @ self._vectors.claims[claim_id]).astype(
            np.float64
        )
        chosen = best_sentence_indices(scores, per_passage)
        key = (doc_id, tuple(chosen))
        if key not in self._counts:
            sentences = split_sentences(self._corpus[doc_id].text)
            text = " ".join(sentences[i] for i in chosen)
            self._counts[key] = self._counter.count(self._model, text)
        return chosen, self._counts[key]

    def measure(
        self,
        signals: Sequence[ClaimSignals],
        spec: RankerSpec,
        policy: KeepPolicy,
        label: str,
    ) -> SentenceMetrics:
        per_passage = policy.sentences_per_passage
        totals = np.zeros(6)  # evidence docs, kept; evidence sentences, kept; tokens all, kept
        passages = 0
        for claim in signals:
            ranked = rank_claim(spec, claim)
            claim_id = claim.candidates.claim.claim_id
            cuts = [
                self._cut(d, claim_id, per_passage, whole)
                for d, whole in zip(claim.candidates.doc_ids, claim.tokens, strict=True)
            ]
            kept = set(select(ranked, [tokens for _, tokens in cuts], policy))
            passages += len(kept)
            totals[4] += sum(claim.tokens)
            totals[5] += sum(cuts[i][1] for i in kept)
            for position in claim.evidence:
                doc_id = claim.candidates.doc_ids[position]
                wanted = claim.candidates.claim.evidence[doc_id]
                refs = sentence_refs(self._corpus[doc_id])
                sent = {refs[i] for i in cuts[position][0]} if position in kept else set()
                totals[0] += 1
                totals[1] += bool(sent)
                totals[2] += len(wanted)
                totals[3] += len(wanted & sent)
        return SentenceMetrics(
            ranking=spec.label,
            policy=label,
            claims=len(signals),
            evidence_kept=totals[1] / max(totals[0], 1),
            evidence_sentences_kept=totals[3] / max(totals[2], 1),
            tokens_kept=totals[5] / max(totals[4], 1),
            passages_kept=passages / max(len(signals), 1),
        )


def sentence_grid() -> list[tuple[str, KeepPolicy]]:
    grid = [(f"top-{k}, whole", KeepPolicy(top_k=k)) for k in (5, 10)]
    for k in (3, 5, 10):
        for m in (1, 2, 3, 5):
            grid.append((f"top-{k}, {m} sent.", KeepPolicy(top_k=k, sentences_per_passage=m)))
    return grid


def sentence_rows(prepared: Prepared, spec: RankerSpec, model: str) -> list[dict[str, Any]]:
    """The grid on the test half, passages ranked by ``spec``."""
    evaluator = SentenceTrimEval(prepared.corpus, prepared.vectors, model)
    return [
        asdict(evaluator.measure(prepared.test, spec, policy, label))
        for label, policy in sentence_grid()
    ]
