"""The threshold search: simulation, frontier, choice, the file formats and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from costwarden.cli import main
from costwarden.config import settings_from_dict
from costwarden.savings.cascade.calibration import (
    SKIP,
    Labelled,
    Point,
    calibrate,
    candidates,
    choose,
    load_labelled,
    pareto,
    simulate,
)

# Four queries, two tiers: the cheap tier is right exactly when its score is high.
SMALL = Labelled(
    models=("cheap", "top"),
    ids=("a", "b", "c", "d"),
    scores=np.asarray([[0.9, 1], [0.8, 1], [0.3, 1], [0.1, 1]], dtype=np.float64),
    correct=np.asarray([[1, 1], [1, 1], [0, 1], [0, 0]], dtype=np.float64),
    costs=np.asarray([[1, 10]] * 4, dtype=np.float64),
)


def test_simulate_pays_every_tier_reached_and_takes_the_first_accepted() -> None:
    split = simulate(SMALL, (0.5,))
    assert split.accuracy == 0.75  # a, b from cheap; c right on top, d wrong on top
    assert split.cost == (1 + 1 + 11 + 11) / 4
    assert simulate(SMALL, (0.0,)) == Point((0.0,), 0.5, 1.0)  # cheap answers all
    assert simulate(SMALL, (SKIP,)) == Point((SKIP,), 0.75, 10.0)  # top alone
    assert simulate(SMALL, (0.95,)).cost == 11.0  # called, never accepted: dearer than skip


def test_candidates_are_score_quantiles_and_skip() -> None:
    grid = candidates(np.linspace(0, 1, 101), 5)
    assert grid == [0.0, 0.25, 0.5, 0.75, 1.0, SKIP]


def test_pareto_and_choose() -> None:
    points = [Point((t,), a, c) for t, a, c in [(1, 0.5, 1), (2, 0.7, 3), (3, 0.6, 4), (4, 0.9, 9)]]
    front = pareto(points)
    assert [p.thresholds for p in front] == [(1,), (2,), (4,)]  # (3,) is beaten by (2,)
    assert choose(front, budget=5) == front[1]
    assert choose(front, target=0.75) == front[2]
    assert choose(front, budget=0.5) is None
    with pytest.raises(ValueError):
        choose(front)


def test_calibrate_finds_the_split_that_matches_the_top_tier_cheaper() -> None:
    rng = np.random.default_rng(7)
    n = 4000
    score = rng.uniform(size=n)
    cheap_right = rng.uniform(size=n) < score  # a calibrated score: P(right) = score
    top_right = rng.uniform(size=n) < 0.9
    data = Labelled(
        ("cheap", "top"),
        tuple(str(i) for i in range(n)),
        np.stack([score, np.ones(n)], axis=1),
        np.stack([cheap_right, top_right], axis=1).astype(np.float64),
        np.tile([1.0, 20.0], (n, 1)),
    )
    train, test = data.take(np.arange(n) < 3000), data.take(np.arange(n) >= 3000)
    result = calibrate(train, test, target=float(top_right[:3000].mean()))
    assert result is not None
    [threshold] = result.chosen.thresholds
    # Accuracy (1 - t^2)/2 + 0.9 t first reaches the top's 0.9 at t = 0.8 (sampling noise aside).
    assert 0.65 < threshold < 0.95
    assert result.test.accuracy > result.alone[-1].accuracy - 0.03
    assert 0.05 < result.saving_vs_top < 0.5
    costs = [train_point.cost for train_point, _ in result.frontier]
    assert costs == sorted(costs)


def _write_rows(path: Path) -> None:
    rng = np.random.default_rng(3)
    with path.open("w") as handle:
        for i in range(600):
            score = float(rng.uniform())
            tiers = [
                {"model": "gpt-4o-mini", "score": score, "correct": bool(rng.uniform() < score)},
                {"model": "gpt-4o", "correct": bool(rng.uniform() < 0.9), "cost": 0.001},
            ]
            tiers[0]["cost"] = 0.0001
            handle.write(json.dumps({"id": f"q{i}", "tiers": tiers}) + "\n")


def test_csv_and_jsonl_read_alike(tmp_path: Path) -> None:
    jsonl = tmp_path / "rows.jsonl"
    _write_rows(jsonl)
    data = load_labelled(jsonl)
    csv_path = tmp_path / "rows.csv"
    header = "id,model_0,score_0,correct_0,cost_0,model_1,correct_1,cost_1\n"
    lines = [
        f"{i},gpt-4o-mini,{s[0]},{bool(c[0])},{k[0]},gpt-4o,{bool(c[1])},{k[1]}\n"
        for i, s, c, k in zip(data.ids, data.scores, data.correct, data.costs, strict=True)
    ]
    csv_path.write_text(header + "".join(lines))
    again = load_labelled(csv_path)
    assert again.models == data.models == ("gpt-4o-mini", "gpt-4o")
    assert np.allclose(again.scores[:, 0], data.scores[:, 0])
    assert (again.correct == data.correct).all() and np.allclose(again.costs, data.costs)


def test_cli_writes_a_report_and_a_config_snippet_that_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = tmp_path / "rows.jsonl"
    _write_rows(rows)
    out = tmp_path / "out"
    assert main(["cascade", "calibrate", "--data", str(rows), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "saving vs gpt-4o alone (test)" in printed and "frontier" in printed
    report = json.loads((out / "calibration.json").read_text())
    assert report["models"] == ["gpt-4o-mini", "gpt-4o"] and report["frontier"]
    snippet = yaml.safe_load((out / "cascade.yaml").read_text())
    tiers = snippet["savings"]["cascades"][0]["tiers"]
    assert tiers[-1] == {"model": "gpt-4o"}
    models = [
        {"name": name, "endpoints": [{"api_base": "http://127.0.0.1:9/v1"}]}
        for name in ("gpt-4o-mini", "gpt-4o")
    ]
    settings = settings_from_dict({"models": models, **snippet})  # a valid config section
    assert settings.savings.cascades[0].name == "cascade"
    assert not math.isinf(report["chosen"]["test"]["cost"])
