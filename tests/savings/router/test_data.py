"""The routing CSV loader and the seeded hash split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from costwarden.savings.router.data import (
    CONTAMINATION_FILE,
    GPT4,
    MIXTRAL,
    load_routing_csv,
    parse_score,
    split,
    split_mask,
)

SAMPLE = Path(__file__).parents[1] / "data" / "router_mmlu"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_scores_parse_booleans_and_fractions() -> None:
    assert parse_score("True") == 1.0
    assert parse_score(" false ") == 0.0
    assert parse_score("0.25") == 0.25
    with pytest.raises(ValueError, match="outside"):
        parse_score("1.5")
    with pytest.raises(ValueError):
        parse_score("maybe")


def test_csv_with_named_columns(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "bench.csv",
        'prompt,small,big,other\n"multi\nline",True,0.5,x\nsecond,0,1,y\n',
    )
    data = load_routing_csv(path, weak="small", strong="big")
    assert data.prompts == ("multi\nline", "second")
    assert data.groups == ("bench", "bench")
    assert np.array_equal(data.weak, [1.0, 0.0])
    assert np.array_equal(data.strong, [0.5, 1.0])


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "bench.csv", "prompt,small\nhello,True\n")
    with pytest.raises(ValueError, match="big"):
        load_routing_csv(path, weak="small", strong="big")


def test_folder_loads_every_csv_and_drops_contaminated(tmp_path: Path) -> None:
    folder = tmp_path / "responses"
    folder.mkdir()
    _write(folder / "a.csv", "prompt,w,s\none,True,True\nleaked,False,True\n")
    _write(folder / "b.csv", "prompt,w,s\ntwo,False,False\n")
    _write(
        tmp_path / CONTAMINATION_FILE,
        json.dumps({"train_prompt": "x", "eval_prompt": "leaked"}) + "\n",
    )
    data = load_routing_csv(tmp_path, weak="w", strong="s")
    assert data.prompts == ("one", "two")
    assert data.groups == ("a", "b")
    kept = load_routing_csv(tmp_path, weak="w", strong="s", drop=frozenset())
    assert len(kept) == 3


def test_sample_is_mmlu_shaped() -> None:
    data = load_routing_csv(SAMPLE, MIXTRAL, GPT4)
    assert len(data) == 340
    assert set(data.groups) == {
        "mmlu_high_school_mathematics",
        "mmlu_moral_scenarios",
        "mmlu_marketing",
    }


def test_split_is_a_function_of_the_prompt_and_seed() -> None:
    prompts = [f"question {i}" for i in range(2000)]
    mask = split_mask(prompts, seed=0, eval_share=0.3)
    assert np.array_equal(mask, split_mask(prompts, seed=0, eval_share=0.3))
    # A row's side does not depend on the other rows.
    assert np.array_equal(split_mask(prompts[::7], seed=0), mask[::7])
    assert 0.27 < mask.mean() < 0.33
    other = split_mask(prompts, seed=1, eval_share=0.3)
    assert not np.array_equal(mask, other)
    # Golden values (sha256("0:" + prompt) as a fraction of 2**64: f 0.289, g 0.362,
    # h 0.093, a 0.617): the split must not drift between versions.
    assert split_mask(["f", "g", "h", "a"], seed=0).tolist() == [True, False, True, False]


def test_split_keeps_every_row_once() -> None:
    data = load_routing_csv(SAMPLE, MIXTRAL, GPT4)
    train, evaluation = split(data, seed=0, eval_share=0.3)
    assert len(train) + len(evaluation) == len(data)
    assert not set(train.prompts) & set(evaluation.prompts)
