"""The router artifact the gateway loads: ``<stem>.npz`` (arrays) + ``<stem>.json`` (metadata).

Format 1 (``format: "costwarden-router/1"`` in the JSON):

JSON: ``embedder`` (the embedding model's name; the gateway refuses an artifact made with
another), ``embedder_dim``, ``weak`` / ``strong`` (the score columns it learned from),
``threshold`` (route to strong when score >= threshold), ``strong_share`` (the share of
training prompts that threshold sends strong), ``train_rows``, ``config`` (the
``RouterTrainConfig``), ``features`` (the stacker's inputs, in order), ``created_at``.

NPZ: ``knn_vectors`` (float16, n × dim), ``knn_weak`` / ``knn_strong`` (float32 scores);
``embed_mean`` / ``embed_scale`` and ``embed_{weak,strong}_w`` / ``_b``; when the lexical head
is on, ``tfidf_idf`` and ``lexical_{weak,strong}_w`` / ``_b``; when the tail head is on,
``tail_mean`` / ``tail_scale`` and ``tail_{weak,strong}_w`` / ``_b``; ``stack_mean`` /
``stack_scale`` and ``stack_{weak,strong}_w`` / ``_b``. A logistic head's ``_b`` is a 0-d bias.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from costwarden.savings.router.knn import KnnHead, KnnSettings
from costwarden.savings.router.lexical import TfIdf
from costwarden.savings.router.linear import Logistic
from costwarden.savings.router.model import (
    BaseHeads,
    FittedRouter,
    PairHead,
    RouterTrainConfig,
    Stacker,
    Standardiser,
)

FORMAT = "costwarden-router/1"
Arrays = dict[str, npt.NDArray[Any]]


class ArtifactError(ValueError):
    """The artifact is missing, of another format, or inconsistent."""


@dataclass(frozen=True, slots=True)
class RouterArtifact:
    """A fitted router with its threshold and provenance."""

    router: FittedRouter
    threshold: float
    strong_share: float
    embedder: str
    embedder_dim: int
    weak: str
    strong: str
    config: RouterTrainConfig
    created_at: str = ""


def artifact_paths(path: Path) -> tuple[Path, Path]:
    """``x``, ``x.npz`` or ``x.json`` all name the pair ``x.npz`` + ``x.json``."""
    stem = path.with_suffix("") if path.suffix in {".npz", ".json"} else path
    return stem.with_name(stem.name + ".npz"), stem.with_name(stem.name + ".json")


def _put_pair(arrays: Arrays, prefix: str, head: PairHead) -> None:
    for side, model in (("weak", head.weak), ("strong", head.strong)):
        arrays[f"{prefix}_{side}_w"] = model.weights.astype(np.float32)
        arrays[f"{prefix}_{side}_b"] = np.asarray(model.bias, dtype=np.float64)


def _get_pair(arrays: Arrays, prefix: str) -> PairHead:
    def one(side: str) -> Logistic:
        weights = np.asarray(arrays[f"{prefix}_{side}_w"], dtype=np.float64)
        return Logistic(weights, float(arrays[f"{prefix}_{side}_b"]))

    return PairHead(one("weak"), one("strong"))


def _to_arrays(router: FittedRouter) -> Arrays:
    heads = router.heads
    arrays: Arrays = {
        "knn_vectors": heads.knn.vectors.astype(np.float16),
        "knn_weak": heads.knn.weak.astype(np.float32),
        "knn_strong": heads.knn.strong.astype(np.float32),
        "embed_mean": heads.embed_scale.mean,
        "embed_scale": heads.embed_scale.scale,
        "stack_mean": router.stacker.scale.mean,
        "stack_scale": router.stacker.scale.scale,
    }
    _put_pair(arrays, "embed", heads.embed)
    _put_pair(arrays, "stack", router.stacker.head)
    if heads.tfidf is not None and heads.lexical is not None:
        arrays["tfidf_idf"] = heads.tfidf.idf.astype(np.float32)
        _put_pair(arrays, "lexical", heads.lexical)
    if heads.tail_scale is not None and heads.tail is not None:
        arrays["tail_mean"] = heads.tail_scale.mean
        arrays["tail_scale"] = heads.tail_scale.scale
        _put_pair(arrays, "tail", heads.tail)
    return arrays


def _from_arrays(arrays: Arrays, config: RouterTrainConfig) -> FittedRouter:
    knn = KnnHead(
        vectors=np.asarray(arrays["knn_vectors"], dtype=np.float32),
        weak=np.asarray(arrays["knn_weak"], dtype=np.float64),
        strong=np.asarray(arrays["knn_strong"], dtype=np.float64),
        settings=KnnSettings(config.knn_k, config.knn_temperature, config.knn_prior),
    )
    lexical = "tfidf_idf" in arrays
    tail = "tail_mean" in arrays  # artifacts made before the tail head have none
    heads = BaseHeads(
        knn=knn,
        embed_scale=Standardiser(arrays["embed_mean"], arrays["embed_scale"]),
        embed=_get_pair(arrays, "embed"),
        tfidf=TfIdf(np.asarray(arrays["tfidf_idf"], dtype=np.float64)) if lexical else None,
        lexical=_get_pair(arrays, "lexical") if lexical else None,
        tail_scale=Standardiser(arrays["tail_mean"], arrays["tail_scale"]) if tail else None,
        tail=_get_pair(arrays, "tail") if tail else None,
    )
    stacker = Stacker(
        Standardiser(arrays["stack_mean"], arrays["stack_scale"]), _get_pair(arrays, "stack")
    )
    return FittedRouter(heads, stacker, train_scores=np.zeros(0))


def save_artifact(artifact: RouterArtifact, path: Path) -> tuple[Path, Path]:
    npz_path, json_path = artifact_paths(path)
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(npz_path, **_to_arrays(artifact.router))  # type: ignore[arg-type]
    meta = {
        "format": FORMAT,
        "embedder": artifact.embedder,
        "embedder_dim": artifact.embedder_dim,
        "weak": artifact.weak,
        "strong": artifact.strong,
        "threshold": artifact.threshold,
        "strong_share": artifact.strong_share,
        "train_rows": len(artifact.router.heads.knn.weak),
        "config": artifact.config.model_dump(),
        "features": feature_names(
            artifact.router.heads.tfidf is not None, artifact.router.heads.tail is not None
        ),
        "created_at": artifact.created_at or datetime.now(UTC).isoformat(timespec="seconds"),
    }
    json_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return npz_path, json_path


def load_artifact(path: Path) -> RouterArtifact:
    npz_path, json_path = artifact_paths(path)
    if not npz_path.is_file() or not json_path.is_file():
        raise ArtifactError(f"router artifact needs both {npz_path} and {json_path}")
    meta = json.loads(json_path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ArtifactError(f"{json_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    config = RouterTrainConfig.model_validate(meta["config"])
    with np.load(npz_path) as stored:
        arrays: Arrays = {name: stored[name] for name in stored.files}
    try:
        router = _from_arrays(arrays, config)
    except KeyError as exc:
        raise ArtifactError(f"{npz_path}: missing array {exc}") from exc
    if router.heads.knn.vectors.shape[1] != int(meta["embedder_dim"]):
        raise ArtifactError(f"{npz_path}: vectors do not have {meta['embedder_dim']} columns")
    return RouterArtifact(
        router=router,
        threshold=float(meta["threshold"]),
        strong_share=float(meta["strong_share"]),
        embedder=str(meta["embedder"]),
        embedder_dim=int(meta["embedder_dim"]),
        weak=str(meta["weak"]),
        strong=str(meta["strong"]),
        config=config,
        created_at=str(meta.get("created_at", "")),
    )


def feature_names(lexical: bool, tail: bool = False) -> list[str]:
    heads = ["knn", "embed", *(["lexical"] if lexical else []), *(["tail"] if tail else [])]
    return [f"{h}_{side}_logit" for h in heads for side in ("weak", "strong")] + ["log_length"]
