"""Typed settings of RAG context trimming: ranking, keep policy, and the gateway stage.

Kept free of numpy and the embedding model (like ``savings.config``), so the gateway's
``Settings`` can include ``TrimmingConfig`` without loading them. What each field does is
explained in ``savings.trimming``; the defaults are the settings measured on SciFact
(docs/savings.md, "RAG context trimming").
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Ranking = Literal["hybrid", "dense", "bm25"]
Fusion = Literal["zscore", "minmax", "rrf"]
DenseUnit = Literal["passage", "sentence"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeepPolicy(_Model):
    """Which ranked passages to keep; every limit given applies (None: no such limit)."""

    top_k: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=0)
    cutoff: float | None = Field(default=None, ge=0)
    min_keep: int = Field(default=1, ge=0)  # kept despite the cut-off (never past max_tokens)
    # Send only this many best sentences of each kept passage (needs dense_unit "sentence");
    # the other limits then count the cut passages' tokens.
    sentences_per_passage: int | None = Field(default=None, ge=1)


class TrimConfig(_Model):
    """How passages are ranked, and the keep policy used when a request names none."""

    # Defaults: the ranking, the two stages and the cut-off chosen on half of SciFact's claims,
    # which kept 96.8 % of the evidence with 18.5 % of the tokens on the other half
    # (docs/savings.md). One stage (``rerank_top: null``, cutoff 0.35: 96.1 % with 16.4 %)
    # embeds every sentence of every passage: twice the time on passages not yet cached.
    ranking: Ranking = "hybrid"
    # "sentence": a passage's cosine is its best sentence's (an answer is often one sentence
    # deep in a passage, past what the model reads of it); "passage": the passage's own.
    dense_unit: DenseUnit = "sentence"
    fusion: Fusion = "minmax"
    dense_weight: float = Field(default=0.7, ge=0, le=1)  # the lexical signal gets the rest
    rrf_k: int = Field(default=60, ge=1)
    bm25_k1: float = Field(default=1.2, gt=0)
    bm25_b: float = Field(default=0.75, ge=0, le=1)
    # Two stages (only with dense_unit "sentence" and a ranking that uses embeddings): every
    # passage is ranked first with the cosine of the best of its first ``lead_sentences``
    # sentences (a title, a heading) in place of its best sentence's, then only the best
    # ``rerank_top`` are embedded sentence by sentence and ranked as one stage would rank them;
    # the others follow, below them, in the first ranking's order. None: one stage, every
    # sentence of every passage embedded.
    rerank_top: int | None = Field(default=19, ge=1)
    lead_sentences: int = Field(default=1, ge=1)
    policy: KeepPolicy = KeepPolicy(cutoff=0.5)

    @model_validator(mode="after")
    def _sentences_need_sentence_unit(self) -> TrimConfig:
        if self.policy.sentences_per_passage is not None and self.dense_unit != "sentence":
            raise ValueError("policy.sentences_per_passage needs dense_unit: sentence")
        return self


class TrimmingConfig(_Model):
    """The ``savings.trimming`` section: the gateway stage that trims RAG context."""

    enabled: bool = False
    trim: TrimConfig = TrimConfig()
    # Upper bounds on what one request may send for trimming: the embedding runs on the
    # gateway's CPU, ~25-50 ms per 256-token passage on one core.
    max_passages: int = Field(default=200, ge=1)
    max_passage_chars: int = Field(default=20_000, ge=1)
    # Passages embedded recently are kept (RAG corpora resend the same chunks); 0: no cache.
    vector_cache_entries: int = Field(default=20_000, ge=0)
