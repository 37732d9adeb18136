"""The tail of long prompts: what is cut, what is embedded, and that the router uses it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from costwarden.savings.router.artifact import RouterArtifact, load_artifact, save_artifact
from costwarden.savings.router.model import RouterTrainConfig, fit_router
from costwarden.savings.router.tail import TAIL_CHARS, long_rows, tail_text, tail_vectors
from tests.savings.router.test_model import synthetic

QUESTION = "\nWhich is right?\nA. yes\nB. no\nAnswer:"


def test_short_prompts_have_no_tail() -> None:
    assert tail_text("short question?") is None
    assert tail_text("x" * TAIL_CHARS) is None


def test_the_tail_is_the_end_of_a_long_prompt_from_a_word_start() -> None:
    prompt = "word " * 400 + QUESTION
    tail = tail_text(prompt)
    assert tail is not None
    assert tail.endswith(QUESTION)
    assert tail.startswith("word ")
    assert len(tail) <= TAIL_CHARS
    assert long_rows(["short", prompt]) == ([1], [tail])


class CountingEmbedder:
    """Each text's row is a one-hot of its length mod dim; remembers what it embedded."""

    name = "counting"
    dim = 8

    def __init__(self) -> None:
        self.seen: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.seen += list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        out[np.arange(len(texts)), [len(t) % self.dim for t in texts]] = 1.0
        return out


def test_only_long_prompts_are_embedded_again(tmp_path: Path) -> None:
    prompts = ["short one", "word " * 400 + QUESTION, "another short one"]
    head = np.full((3, 8), 0.5, dtype=np.float32)
    embedder = CountingEmbedder()
    tails = tail_vectors(embedder, prompts, head, tmp_path)
    assert embedder.seen == [tail_text(prompts[1])]
    assert np.array_equal(tails[[0, 2]], head[[0, 2]])
    assert tails[1].sum() == 1.0
    # Cached: a second call embeds nothing.
    again = CountingEmbedder()
    assert np.array_equal(tail_vectors(again, prompts, head, tmp_path), tails)
    assert again.seen == []


def test_the_router_learns_from_tails_and_round_trips(tmp_path: Path) -> None:
    # The topic shows only in the tail vectors: the head vectors are noise.
    tails, prompts, weak, strong = synthetic(n=300)
    rng = np.random.default_rng(3)
    heads = rng.normal(size=tails.shape).astype(np.float32)
    heads /= np.linalg.norm(heads, axis=1, keepdims=True)
    plain = ["question"] * len(prompts)  # no lexical signal either
    cfg = RouterTrainConfig(folds=3, lexical=False, steps=150)
    router = fit_router(heads, plain, weak, strong, cfg, tails=tails)
    test_tails, test_prompts, _, _ = synthetic(n=100, seed=9)
    test_heads = rng.normal(size=test_tails.shape).astype(np.float32)
    test_heads /= np.linalg.norm(test_heads, axis=1, keepdims=True)
    scores = router.score(test_heads, ["question"] * 100, test_tails)
    hard = np.array(["prove" in p for p in test_prompts])
    assert scores[hard].mean() > scores[~hard].mean() + 0.3
    artifact = RouterArtifact(router, 0.0, 0.5, "e", 16, "w", "s", cfg)
    save_artifact(artifact, tmp_path / "r")
    loaded = load_artifact(tmp_path / "r")
    assert loaded.router.heads.tail is not None
    after = loaded.router.score(test_heads, ["question"] * 100, test_tails)
    assert np.allclose(scores, after, atol=1e-5)


def test_an_artifact_without_the_tail_head_still_loads(tmp_path: Path) -> None:
    vectors, prompts, weak, strong = synthetic(n=120)
    cfg = RouterTrainConfig(folds=2, lexical=False, tail=False, steps=50)
    router = fit_router(vectors, prompts, weak, strong, cfg)
    assert router.heads.tail is None
    save_artifact(RouterArtifact(router, 0.0, 0.5, "e", 16, "w", "s", cfg), tmp_path / "r")
    loaded = load_artifact(tmp_path / "r")
    assert loaded.router.heads.tail is None
    assert np.allclose(
        loaded.router.score(vectors, prompts), router.score(vectors, prompts), atol=1e-5
    )
