"""The STS-B evaluation: rates, Spearman, the default threshold, and the command end to end on a
small sample kept under tests/ (the full data set lives in ../shared/data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from costwarden.cli import main
from costwarden.savings.semantic.check import SecondStageCheck, shipped_model
from costwarden.savings.semantic.evaluation import (
    Pair,
    Rates,
    best_threshold,
    build_split,
    check_accepts,
    judge_pair,
    load_pairs,
    rates,
    spearman,
)
from costwarden.savings.semantic.text import FEATURE_NAMES, pair_features, profile

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "stsb_sample"


def unit_pairs(cosines: list[float]) -> np.ndarray:
    """Rows [first sentences..., second sentences...] whose pairwise cosines are ``cosines``."""
    first = np.tile(np.array([1.0, 0.0], dtype=np.float32), (len(cosines), 1))
    second = np.array([[c, np.sqrt(1 - c * c)] for c in cosines], dtype=np.float32)
    return np.vstack([first, second])


def test_rates_count_hits_among_same_strict_and_different_pairs() -> None:
    scores = [5.0, 4.6, 4.0, 3.5, 3.0, 1.0, 0.0, 2.0]
    cosines = [0.95, 0.80, 0.91, 0.99, 0.92, 0.50, 0.89, 0.10]
    pairs = [Pair(f"a{i}", f"b{i}", s) for i, s in enumerate(scores)]
    split = build_split("t", pairs, unit_pairs(cosines))
    assert np.allclose(split.cosine, cosines, atol=1e-6)
    result = rates(split.cosine >= 0.9, split.scores)
    # same: 5.0, 4.6, 4.0 → hits at .95 and .91 → 2/3; strict (>=4.5): 5.0, 4.6 → 1/2;
    # different (<=3.0): 3.0, 1.0, 0.0, 2.0 → only 0.92 hits → 1/4; 3.5 counts nowhere.
    assert result == Rates(hit=2 / 3, strict_hit=0.5, false_hit=0.25)


def test_spearman_ranks_ties_by_their_average() -> None:
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 2, 4])) == pytest.approx(0.8)
    assert spearman(np.array([1.0, 1, 2]), np.array([1.0, 2, 3])) == pytest.approx(0.75**0.5)


def test_the_default_is_the_most_hits_within_the_false_hit_limit() -> None:
    table = [Rates(0.9, 0.9, 0.05), Rates(0.7, 0.8, 0.01), Rates(0.5, 0.6, 0.0)]
    assert best_threshold([0.8, 0.85, 0.9], table) == 0.85
    assert best_threshold([0.8, 0.85, 0.9], table, max_false_hit=0.0) == 0.9
    assert best_threshold([0.8], [Rates(1, 1, 0.5)]) is None


def test_the_vectorised_check_agrees_with_the_live_one() -> None:
    pairs = load_pairs(SAMPLE / "stsb-en-train.csv")
    rng = np.random.default_rng(0)
    split = build_split("t", pairs, unit_pairs(list(rng.uniform(0.5, 1.0, len(pairs)))))
    model = shipped_model()
    vectorised = check_accepts(split, model, require_same_numbers=True)
    live = SecondStageCheck(model, require_same_numbers=True)
    one_by_one = [judge_pair(live, p, float(c)) for p, c in zip(pairs, split.cosine, strict=True)]
    assert vectorised.tolist() == one_by_one
    assert 0 < sum(one_by_one) < len(pairs)


def test_the_command_prints_the_table_and_writes_consistent_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "semantic.json"
    args = ["eval", "semantic-cache", "--data", str(SAMPLE), "--json", str(out)]
    assert main([*args, "--cache-dir", str(tmp_path / "cache")]) == 0
    printed = capsys.readouterr().out
    assert "Spearman(cosine, score)" in printed and "default (cosine+check" in printed
    results = json.loads(out.read_text())
    assert results["counts"]["train"] == {
        "pairs": 60,
        "same": 30,
        "strict_same": results["counts"]["train"]["strict_same"],
        "different": 26,
    }
    assert 0.5 < results["spearman"]["train"] <= 1
    for arm in ("cosine", "cosine+check"):
        hits = [row["hit"] for row in results[arm]["dev"]]
        assert hits == sorted(hits, reverse=True)  # a higher threshold never hits more
    check = results["cosine+check"]["train"]
    plain = results["cosine"]["train"]
    assert all(c["false_hit"] <= p["false_hit"] for c, p in zip(check, plain, strict=True))
    assert list((tmp_path / "cache").glob("*.npy"))  # embeddings cached for the next run


@pytest.mark.parametrize(
    "typed",
    [
        "how can i reset my password",
        "how do i reset my password",
        "HOW DO I RESET MY PASSWORD",
        "How do I reset my password",
    ],
)
def test_case_and_punctuation_a_user_types_do_not_matter(typed: str) -> None:
    stored = profile("How do I reset my password?")
    query = profile(typed)
    # A lowercase "i" is not a name, and a question without its "?" is still a question.
    features = dict(zip(FEATURE_NAMES, pair_features(query, stored, 0.98), strict=True))
    assert features["entity_mismatch"] == 0 and features["entity_swap"] == 0
    assert features["question_mismatch"] == 0
    assert SecondStageCheck(shipped_model()).judge(query, stored, 0.98).accepted


def test_a_lowercase_name_is_the_same_name_but_another_name_is_not() -> None:
    stored = profile("What is the capital of France?")
    same = pair_features(profile("what is the capital of france"), stored, 0.9)
    other = pair_features(profile("What is the capital of Germany?"), stored, 0.9)
    index = FEATURE_NAMES.index("entity_swap")
    assert same[index] == 0 and other[index] == 1
