"""Embeddings of whole data sets, cached on disk so evaluation reruns skip the model.

Embedding 14k MMLU prompts takes minutes on a small machine; the result depends only on the
texts and the embedder, so it is stored as ``<dir>/<sha256(name, texts)>.npy`` and reused.
A file that does not load, or whose shape is wrong, is recomputed (never trusted).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from costwarden.savings.embedding import Embedder, Vectors

DEFAULT_CACHE_DIR = Path(".cache") / "embeddings"


def cache_key(embedder_name: str, texts: Sequence[str]) -> str:
    digest = hashlib.sha256(embedder_name.encode("utf-8") + b"\0")
    for text in texts:
        digest.update(hashlib.sha256(text.encode("utf-8")).digest())
    return digest.hexdigest()


def _embed_all(embedder: Embedder, texts: Sequence[str], batch_size: int) -> Vectors:
    batched = getattr(embedder, "embed_batched", None)
    if callable(batched):
        result: Vectors = batched(texts, batch_size=batch_size)
        return result
    return embedder.embed(texts)


def cached_embeddings(
    embedder: Embedder,
    texts: Sequence[str],
    cache_dir: Path | None = DEFAULT_CACHE_DIR,
    batch_size: int = 64,
) -> Vectors:
    """``embedder``'s rows for ``texts``, from ``cache_dir`` when there (``None``: no cache)."""
    if cache_dir is None:
        return _embed_all(embedder, texts, batch_size)
    path = cache_dir / f"{cache_key(embedder.name, texts)}.npy"
    if path.is_file():
        try:
            stored = np.load(path)
        except (OSError, ValueError):
            stored = None
        if stored is not None and stored.shape == (len(texts), embedder.dim):
            cached: Vectors = stored.astype(np.float32, copy=False)
            return cached
    vectors = _embed_all(embedder, texts, batch_size)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Write then rename: a reader never sees half a file.
    partial = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(partial, vectors)
    partial.replace(path)
    return vectors
