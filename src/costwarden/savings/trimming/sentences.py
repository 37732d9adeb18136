"""Sentences of a passage: the unit of dense scoring (a passage scores as its best sentence
does, not only as its first 128-256 tokens) and of sentence-level trimming (a kept passage cut
to its best sentences).

The split is a plain rule, not a trained model: line breaks, and sentence-ending punctuation
followed by white space and a capital, digit or opening bracket. It mis-splits after some
abbreviations ("et al. Smith"), which costs a slightly worse score for that passage, never a
lost passage: the passage is kept or dropped whole.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


def split_sentences(text: str) -> list[str]:
    """Non-empty sentences of ``text``, in order, stripped."""
    sentences: list[str] = []
    for line in text.splitlines():
        sentences.extend(part.strip() for part in _BOUNDARY.split(line) if part.strip())
    return sentences


def best_sentence_indices(scores: npt.NDArray[np.float64], per_passage: int) -> list[int]:
    """Indices of the ``per_passage`` highest ``scores``, in their original order."""
    return sorted(int(i) for i in np.argsort(-scores, kind="stable")[:per_passage])


def keep_best_sentences(
    sentences: Sequence[str],
    scores: npt.NDArray[np.float64],
    owners: npt.NDArray[np.int64],
    n_passages: int,
    per_passage: int,
) -> list[str]:
    """Each passage cut to its ``per_passage`` best-scoring sentences, kept in their original
    order (so the text still reads in sequence) and joined by a space; ``owners[i]`` is the
    passage of ``sentences[i]``."""
    texts: list[str] = []
    for passage in range(n_passages):
        own = np.flatnonzero(owners == passage)
        best = best_sentence_indices(scores[own], per_passage)
        texts.append(" ".join(sentences[int(own[i])] for i in best))
    return texts
