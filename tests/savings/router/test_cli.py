"""``costwarden router eval`` / ``train`` end to end on 340 real MMLU rows kept in tests/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from costwarden.cli import main
from costwarden.savings.router.artifact import load_artifact

SAMPLE = Path(__file__).parents[1] / "data" / "router_mmlu"
EMBEDDINGS = Path(__file__).parents[1] / "data" / "router_mmlu_embeddings"


def sample_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the sample's MiniLM embeddings, precomputed (float16): embedding
    340 prompts would take most of the suite's time on a small machine. A changed embedder
    misses and re-embeds."""
    folder = tmp_path_factory.mktemp("embeddings")
    for cached in EMBEDDINGS.glob("*.npy"):
        shutil.copy(cached, folder / cached.name)
    return folder


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_cache(tmp_path_factory)


def test_eval_prints_writes_json_and_png(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json, out_png = tmp_path / "eval.json", tmp_path / "eval.png"
    argv = ["router", "eval", "--data", str(SAMPLE), "--cache-dir", str(cache_dir)]
    status = main([*argv, "--json", str(out_json), "--png", str(out_png)])
    assert status == 0
    printed = capsys.readouterr().out
    for label in ("learned router", "TF-IDF logistic", "per-group prior", "random", "oracle"):
        assert label in printed
    assert "CPT(95%)" in printed
    report = json.loads(out_json.read_text())
    routers = report["routers"]
    assert routers["random"]["apgr"] == pytest.approx(0.5)
    assert routers["oracle"]["apgr"] > routers["learned router"]["apgr"]
    # Mathematics (GPT-4 at 3 % here) against moral scenarios (+38 points): easy to learn.
    assert routers["learned router"]["apgr"] > 0.7
    assert report["train_rows"] + report["eval_rows"] == 340
    assert [p["target"] for p in report["operating_points"]] == ["0.2", "0.35", "0.5", "auto"]
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_saves_an_artifact_the_gateway_can_load(tmp_path: Path, cache_dir: Path) -> None:
    stem = tmp_path / "router"
    argv = ["router", "train", "--data", str(SAMPLE), "--cache-dir", str(cache_dir)]
    assert main([*argv, "--strong-share", "0.35", "--out", str(stem)]) == 0
    artifact = load_artifact(stem)
    assert artifact.strong_share == 0.35
    assert artifact.embedder == "all-MiniLM-L6-v2-int8"
    assert 200 < len(artifact.router.heads.knn.weak) < 340  # the train split only


def test_unknown_column_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["router", "eval", "--data", str(SAMPLE), "--weak", "nope", "--no-cache"]
    assert main(argv) == 2
    assert "nope" in capsys.readouterr().err
