"""Okapi BM25 in numpy, for re-ranking a request's passages and mining evaluation distractors.

Two uses, one index type. Re-ranking scores a handful of passages (the candidates of one
request); there the collection statistics (document frequencies, average length) can come
from the candidates themselves, or from a larger corpus when the caller has one
(``CorpusStats``), which gives rare terms their real weight. Mining scores a whole corpus
(SciFact's 5,183 abstracts) per query through postings lists, so a query costs the
documents that share a term with it, not the corpus size.

Tokenisation is deliberately plain: lower-case alphanumeric runs, English stop words dropped
and a light plural strip ("cells" → "cell"). Scientific and technical text is full of
identifiers ("il-6", "cd4") that a full stemmer would conflate with words; a plural is the
variation a question and its passage most often disagree on.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Scores = npt.NDArray[np.float64]

_WORD = re.compile(r"[a-z0-9]+")
_STOP_WORD_TEXT = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers him his how i if in into is it its
    itself just me more most my no nor not of off on once only or other our out over own
    same she should so some such than that the their them then there these they this those
    through to too under until up very was we were what when where which while who whom why
    will with would you your
"""
STOP_WORDS = frozenset(_STOP_WORD_TEXT.split())


def _strip_plural(word: str) -> str:
    # "cells" → "cell", "studies" → "study"; leaves "virus", "mass", "analysis", "was" alone.
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Index terms of a text: lower-case alphanumeric runs, stop words out, plurals folded."""
    return [_strip_plural(w) for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]


@dataclass(frozen=True, slots=True)
class CorpusStats:
    """Collection statistics from a corpus larger than the passages being scored."""

    doc_freq: Mapping[str, int]
    n_docs: int
    avg_len: float

    @classmethod
    def from_tokens(cls, docs: Iterable[Sequence[str]]) -> CorpusStats:
        doc_freq: Counter[str] = Counter()
        n_docs = 0
        total = 0
        for terms in docs:
            doc_freq.update(set(terms))
            n_docs += 1
            total += len(terms)
        return cls(doc_freq=dict(doc_freq), n_docs=n_docs, avg_len=total / max(n_docs, 1))

    def idf(self, term: str) -> float:
        # The "plus one" form (Lucene's): never negative, so a very common term adds a little
        # instead of subtracting, and a term the corpus never saw gets the highest weight.
        df = self.doc_freq.get(term, 0)
        return math.log(1.0 + (self.n_docs - df + 0.5) / (df + 0.5))


@dataclass(frozen=True, slots=True)
class Bm25Params:
    k1: float = 1.2  # term-frequency saturation
    b: float = 0.75  # length normalisation


class Bm25Index:
    """BM25 over a fixed list of tokenised documents, through postings lists."""

    def __init__(
        self,
        docs: Sequence[Sequence[str]],
        params: Bm25Params | None = None,
        stats: CorpusStats | None = None,
    ) -> None:
        self._params = params or Bm25Params()
        self._stats = stats or CorpusStats.from_tokens(docs)
        self._n = len(docs)
        lengths = np.fromiter((len(d) for d in docs), dtype=np.float64, count=self._n)
        p = self._params
        # Per-document denominator term, so a query costs one gather per posting.
        self._norm = p.k1 * (1.0 - p.b + p.b * lengths / max(self._stats.avg_len, 1e-9))
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for index, terms in enumerate(docs):
            for term, tf in Counter(terms).items():
                ids, tfs = postings.setdefault(term, ([], []))
                ids.append(index)
                tfs.append(tf)
        self._postings = {
            term: (np.asarray(ids, dtype=np.int64), np.asarray(tfs, dtype=np.float64))
            for term, (ids, tfs) in postings.items()
        }

    def __len__(self) -> int:
        return self._n

    def score(self, query: Sequence[str]) -> Scores:
        """BM25 score of every document for a tokenised query (repeated terms count once)."""
        scores = np.zeros(self._n, dtype=np.float64)
        k1 = self._params.k1
        for term in dict.fromkeys(query):
            posting = self._postings.get(term)
            if posting is None:
                continue
            ids, tfs = posting
            weight = self._stats.idf(term)
            scores[ids] += weight * tfs * (k1 + 1.0) / (tfs + self._norm[ids])
        return scores
