"""SciFact (Wadden et al. 2020) as a re-ranking benchmark for context trimming.

The data (``shared/data/rag/scifact``) holds 5,183 abstracts and 809 claims, 505 of which
have evidence abstracts labelled by people (each with its evidence sentences). For each such
claim the candidate set is what a retriever would hand a model: its evidence abstracts plus
``distractors`` hard negatives, the claim's BM25 top-N from the whole corpus excluding its
evidence (ties broken by a seeded random key, so the set is the same on every run), shuffled
with a seeded generator so a ranker that keeps the input order learns nothing.

A passage is an abstract's title and its sentences, one sentence per line after the title,
which is how the sentences of a kept passage can be found again for sentence-level trimming.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from costwarden.savings.trimming.bm25 import Bm25Index, Bm25Params, CorpusStats, tokenize


@dataclass(frozen=True, slots=True)
class Abstract:
    doc_id: int
    title: str
    sentences: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join((self.title, *self.sentences))


@dataclass(frozen=True, slots=True)
class Claim:
    claim_id: int
    text: str
    # doc id → indices of its evidence sentences (every rationale of the abstract, merged)
    evidence: Mapping[int, frozenset[int]]


@dataclass(frozen=True, slots=True)
class Candidates:
    """One claim's shuffled candidate abstracts (doc ids) and which of them are evidence."""

    claim: Claim
    doc_ids: tuple[int, ...]

    @property
    def evidence_positions(self) -> tuple[int, ...]:
        return tuple(i for i, d in enumerate(self.doc_ids) if d in self.claim.evidence)


def load_corpus(path: Path) -> dict[int, Abstract]:
    corpus: dict[int, Abstract] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            doc_id = int(row["doc_id"])
            corpus[doc_id] = Abstract(doc_id, row["title"].strip(), tuple(row["abstract"]))
    return corpus


def load_claims(path: Path) -> list[Claim]:
    """Claims that have at least one evidence abstract."""
    claims: list[Claim] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if not row["evidence"]:
                continue
            evidence = {
                int(doc): frozenset(s for rationale in rationales for s in rationale["sentences"])
                for doc, rationales in row["evidence"].items()
            }
            claims.append(Claim(int(row["id"]), row["claim"], evidence))
    return claims


class DistractorMiner:
    """BM25 over the whole corpus, to pick each claim's hardest non-evidence abstracts."""

    def __init__(self, corpus: Mapping[int, Abstract], params: Bm25Params | None = None) -> None:
        self._doc_ids = np.asarray(sorted(corpus), dtype=np.int64)
        docs = [tokenize(corpus[int(d)].text) for d in self._doc_ids]
        self.stats = CorpusStats.from_tokens(docs)
        self._index = Bm25Index(docs, params, self.stats)

    def hardest(self, claim: Claim, count: int, rng: random.Random) -> list[int]:
        scores = self._index.score(tokenize(claim.text))
        tie_break = np.asarray([rng.random() for _ in range(len(scores))])
        # lexsort sorts by the last key first: score descending, then the seeded key.
        order = np.lexsort((tie_break, -scores))
        picked: list[int] = []
        for position in order:
            doc_id = int(self._doc_ids[position])
            if doc_id not in claim.evidence:
                picked.append(doc_id)
                if len(picked) == count:
                    break
        return picked


def build_candidates(
    claims: Sequence[Claim], miner: DistractorMiner, distractors: int, seed: int
) -> list[Candidates]:
    """Evidence + hard distractors per claim, shuffled; one seeded generator per claim, so a
    claim's set does not depend on which other claims are evaluated."""
    sets: list[Candidates] = []
    for claim in claims:
        rng = random.Random(f"{seed}:{claim.claim_id}")
        doc_ids = sorted(claim.evidence) + miner.hardest(claim, distractors, rng)
        rng.shuffle(doc_ids)
        sets.append(Candidates(claim, tuple(doc_ids)))
    return sets


def split_halves(claims: Sequence[Claim], seed: int) -> tuple[list[Claim], list[Claim]]:
    """(tuning half, test half): a seeded shuffle of the claim ids, cut in two."""
    ids = sorted(c.claim_id for c in claims)
    random.Random(seed).shuffle(ids)
    tune_ids = set(ids[: len(ids) // 2])
    tune = [c for c in claims if c.claim_id in tune_ids]
    test = [c for c in claims if c.claim_id not in tune_ids]
    return tune, test
