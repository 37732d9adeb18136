"""The router's parts on synthetic data: logistic fit, kNN votes, stacking, calibration."""

from __future__ import annotations

import numpy as np
import pytest

from costwarden.savings.router.knn import KnnHead, KnnSettings
from costwarden.savings.router.lexical import TfIdf, count_rows
from costwarden.savings.router.linear import Csr, fit_logistic
from costwarden.savings.router.model import (
    RouterTrainConfig,
    calibrate_threshold,
    fit_router,
    fold_ids,
)


def _unit_rows(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    rows = rng.normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def synthetic(n: int = 400, seed: int = 0) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Two topics: on 'proof' prompts only the strong model is right, on 'trivia' both are."""
    rng = np.random.default_rng(seed)
    centres = _unit_rows(rng, 2)
    topic = rng.integers(0, 2, size=n)
    noise = 0.3 * rng.normal(size=(n, 16)).astype(np.float32)
    vectors = centres[topic] + noise
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    prompts = [
        f"{'prove the lemma about groups' if t else 'name the capital city'} number {i}"
        for i, t in enumerate(topic)
    ]
    flip = rng.random(n) < 0.1  # some label noise
    weak = np.where(topic == 1, 0.0, 1.0)
    weak = np.where(flip, 1.0 - weak, weak)
    strong = np.ones(n)
    return vectors, prompts, weak, strong


def test_logistic_learns_a_separable_rule_dense_and_sparse() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3))
    y = (x[:, 0] - x[:, 1] > 0).astype(float)
    model = fit_logistic(x, y, l2=1e-4, steps=400, learning_rate=0.1)
    assert np.mean((model.predict(x) > 0.5) == (y == 1)) > 0.95
    indptr = np.arange(0, 301 * 3, 3, dtype=np.int64)
    csr = Csr(indptr, np.tile(np.arange(3, dtype=np.int64), 300), x.ravel(), 3)
    sparse = fit_logistic(csr, y, l2=1e-4, steps=400, learning_rate=0.1)
    assert np.allclose(sparse.predict(csr), model.predict(x), atol=1e-9)


def test_csr_handles_empty_rows() -> None:
    rows = count_rows(["", "alpha beta", ""], n_cols=64)
    assert rows.n_rows == 3
    weights = np.ones(64)
    out = rows.dot(weights)
    assert out[0] == 0.0 and out[2] == 0.0
    assert out[1] == 3.0  # alpha, beta, "alpha beta"
    tfidf = TfIdf.fit(["alpha beta", "alpha"], n_cols=64).transform(["alpha beta", ""])
    norms = np.bincount(tfidf.row_ids(), weights=tfidf.data**2, minlength=2)
    assert norms == pytest.approx([1.0, 0.0])


def test_knn_trusts_duplicates_and_falls_back_to_the_mean() -> None:
    rng = np.random.default_rng(2)
    vectors = _unit_rows(rng, 50)
    weak = np.zeros(50)
    weak[0] = 1.0
    head = KnnHead(vectors, weak, np.ones(50), KnnSettings(k=5, temperature=0.05, prior=0.1))
    p_weak, p_strong = head.predict(vectors[:1])
    assert p_weak[0] > 0.85  # its own duplicate dominates
    assert p_strong[0] == pytest.approx(1.0)
    far = -vectors[:1]  # no neighbour anywhere near: the prior (training mean) decides
    p_far, _ = head.predict(far)
    assert abs(p_far[0] - weak.mean()) < 0.05


def test_folds_are_seeded_and_balanced() -> None:
    folds = fold_ids(103, 5, seed=3)
    assert np.array_equal(folds, fold_ids(103, 5, seed=3))
    assert np.bincount(folds).tolist() in ([21, 21, 21, 20, 20],)


def test_threshold_hits_the_target_share() -> None:
    scores = np.random.default_rng(4).normal(size=1000)
    for target in (0.0, 0.1, 0.35, 0.5, 1.0):
        threshold = calibrate_threshold(scores, target)
        assert np.mean(scores >= threshold) == pytest.approx(target)
    with pytest.raises(ValueError):
        calibrate_threshold(scores, 1.5)


def test_router_sends_the_hard_topic_strong() -> None:
    vectors, prompts, weak, strong = synthetic()
    cfg = RouterTrainConfig(folds=3, lexical_columns=1 << 10, steps=150)
    router = fit_router(vectors, prompts, weak, strong, cfg)
    # Calibrated on the out-of-fold training scores, the threshold gives the share asked for.
    threshold = calibrate_threshold(router.train_scores, 0.35)
    assert np.mean(router.train_scores >= threshold) == pytest.approx(0.35, abs=0.01)
    test_vectors, test_prompts, _, _ = synthetic(seed=9)
    scores = router.score(test_vectors, test_prompts)
    hard = np.array(["prove" in p for p in test_prompts])
    assert scores[hard].mean() > scores[~hard].mean() + 0.5
