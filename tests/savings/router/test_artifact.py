"""The router artifact: what is saved is what is loaded, and a wrong file is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from costwarden.savings.router.artifact import (
    FORMAT,
    ArtifactError,
    RouterArtifact,
    artifact_paths,
    load_artifact,
    save_artifact,
)
from costwarden.savings.router.model import RouterTrainConfig, calibrate_threshold, fit_router
from tests.savings.router.test_model import synthetic


@pytest.mark.parametrize("lexical", [True, False])
def test_round_trip_scores_the_same(tmp_path: Path, lexical: bool) -> None:
    vectors, prompts, weak, strong = synthetic(n=200)
    cfg = RouterTrainConfig(folds=2, lexical=lexical, lexical_columns=1 << 10, steps=100)
    router = fit_router(vectors, prompts, weak, strong, cfg)
    artifact = RouterArtifact(
        router=router,
        threshold=calibrate_threshold(router.train_scores, 0.3),
        strong_share=0.3,
        embedder="test-embedder",
        embedder_dim=16,
        weak="small",
        strong="big",
        config=cfg,
    )
    npz_path, json_path = save_artifact(artifact, tmp_path / "router")
    assert (npz_path.name, json_path.name) == ("router.npz", "router.json")
    meta = json.loads(json_path.read_text())
    assert meta["format"] == FORMAT
    assert meta["embedder"] == "test-embedder"
    assert meta["train_rows"] == 200
    loaded = load_artifact(tmp_path / "router.json")
    assert loaded.threshold == artifact.threshold
    assert (loaded.weak, loaded.strong, loaded.config) == ("small", "big", cfg)
    assert (loaded.router.heads.tfidf is not None) == lexical
    test_vectors, test_prompts, _, _ = synthetic(n=50, seed=5)
    before = router.score(test_vectors, test_prompts)
    after = loaded.router.score(test_vectors, test_prompts)
    assert np.allclose(before, after, atol=1e-5)


def test_paths_accept_stem_or_either_file(tmp_path: Path) -> None:
    expected = (tmp_path / "r.npz", tmp_path / "r.json")
    for name in ("r", "r.npz", "r.json"):
        assert artifact_paths(tmp_path / name) == expected


def test_missing_or_foreign_artifact_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="needs both"):
        load_artifact(tmp_path / "absent")
    np.savez(tmp_path / "other.npz", x=np.zeros(1))
    (tmp_path / "other.json").write_text(json.dumps({"format": "something-else/9"}))
    with pytest.raises(ArtifactError, match="format"):
        load_artifact(tmp_path / "other")
