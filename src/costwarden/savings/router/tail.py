"""The tail of a long prompt, embedded beside its head.

MiniLM reads only the first 256 tokens. A long MMLU prompt (a law case, a history passage) puts
its question and answer choices last, so the head embedding misses what is asked. The router
therefore embeds a second text per prompt: the last ``TAIL_CHARS`` characters (cut at a word
boundary, about 200-250 tokens) when the prompt is longer than that, else nothing new — a short
prompt's tail vector is its head vector, so only long prompts pay a second embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from costwarden.savings.embedding import Embedder
from costwarden.savings.router.cache import cached_embeddings

Vectors = npt.NDArray[np.float32]
TAIL_CHARS = 1000


def tail_text(prompt: str, chars: int = TAIL_CHARS) -> str | None:
    """The prompt's last ``chars`` characters from a word start; ``None`` when it is short."""
    if len(prompt) <= chars:
        return None
    tail = prompt[-chars:]
    space = tail.find(" ")
    if 0 <= space < chars // 10:
        tail = tail[space + 1 :]
    return tail


def long_rows(prompts: Sequence[str], chars: int = TAIL_CHARS) -> tuple[list[int], list[str]]:
    """Indexes and tail texts of the prompts that have a tail of their own."""
    index: list[int] = []
    texts: list[str] = []
    for i, prompt in enumerate(prompts):
        tail = tail_text(prompt, chars)
        if tail is not None:
            index.append(i)
            texts.append(tail)
    return index, texts


def tail_vectors(
    embedder: Embedder,
    prompts: Sequence[str],
    head: Vectors,
    cache_dir: Path | None = None,
    chars: int = TAIL_CHARS,
) -> Vectors:
    """One row per prompt: its tail's embedding, or ``head``'s row when it has no tail."""
    out: Vectors = np.array(head, dtype=np.float32, copy=True)
    index, texts = long_rows(prompts, chars)
    if texts:
        out[index] = cached_embeddings(embedder, texts, cache_dir)
    return out
