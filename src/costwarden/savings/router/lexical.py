"""Bag of words for routing: hashed TF-IDF rows (unigrams + bigrams), numpy only.

Tokens are hashed (crc32, stable across processes, unlike ``hash()``) into a fixed number of
columns, so the fitted state is one IDF vector, not a vocabulary. Rows are sublinear TF × IDF,
L2-normalised. It serves as the lexical baseline of ``router eval`` and as extra evidence the
learned router can combine with its embedding heads.
"""

from __future__ import annotations

import itertools
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from costwarden.savings.router.linear import Csr

Floats = npt.NDArray[np.float64]
_WORD = re.compile(r"[a-z0-9]+")
DEFAULT_COLUMNS = 1 << 18


def tokens(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


def _hashed_counts(text: str, n_cols: int) -> tuple[npt.NDArray[np.int64], Floats]:
    hashes = [zlib.crc32(t.encode("utf-8")) % n_cols for t in tokens(text)]
    columns, counts = np.unique(np.asarray(hashes, dtype=np.int64), return_counts=True)
    return columns, counts.astype(np.float64)


def count_rows(texts: Sequence[str], n_cols: int = DEFAULT_COLUMNS) -> Csr:
    """Raw hashed counts, one CSR row per text."""
    rows = [_hashed_counts(text, n_cols) for text in texts]
    lengths = np.asarray([len(cols) for cols, _ in rows], dtype=np.int64)
    indptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    if not rows or indptr[-1] == 0:
        return Csr(indptr, np.zeros(0, np.int64), np.zeros(0), n_cols)
    return Csr(
        indptr=indptr,
        indices=np.concatenate([cols for cols, _ in rows]).astype(np.int64),
        data=np.concatenate([vals for _, vals in rows]),
        n_cols=n_cols,
    )


@dataclass(frozen=True, slots=True)
class TfIdf:
    idf: Floats

    @property
    def n_cols(self) -> int:
        return len(self.idf)

    @classmethod
    def fit(cls, texts: Sequence[str], n_cols: int = DEFAULT_COLUMNS) -> TfIdf:
        counts = count_rows(texts, n_cols)
        document_freq = np.bincount(counts.indices, minlength=n_cols)
        # Smoothed IDF (as scikit-learn's default): unseen columns get the largest weight.
        idf = np.log((1 + counts.n_rows) / (1 + document_freq)) + 1.0
        return cls(idf=idf.astype(np.float64))

    def transform(self, texts: Sequence[str]) -> Csr:
        counts = count_rows(texts, self.n_cols)
        values = (1.0 + np.log(counts.data)) * self.idf[counts.indices]
        squares = np.bincount(counts.row_ids(), weights=values * values, minlength=counts.n_rows)
        scale = 1.0 / np.maximum(np.sqrt(squares), 1e-12)
        values = values * scale[counts.row_ids()]
        return Csr(counts.indptr, counts.indices, values, counts.n_cols)
