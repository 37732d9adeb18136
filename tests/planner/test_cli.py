"""``costwarden plan …`` end to end: printed totals, scenario files, flags, JSON, plots."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from costwarden.cli import main
from costwarden.providers.fake_upstream import FakeUpstream
from tests.planner.test_design import HAND


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["plan", *argv]) == 0
    return capsys.readouterr().out


def test_design_default_prints_the_verdict_with_arithmetic(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _run(capsys, "design")
    assert "summarise 1,000,000 articles/day for $100.00/day" in out
    assert "GPU-hours/day = 1,000,000 ×" in out
    assert "Sensitivities" in out and "Batch APIs" in out
    assert "Verdict: fits the budget" in out


def test_design_scenario_file_and_flag_override(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(yaml.safe_dump({"design": HAND}))
    out = _run(capsys, "design", "--scenario", str(scenario))
    assert "$31.02/day on 3 A10Gs" in out  # hand-computed in test_design
    # Twice the articles, twice the cost: $62.04.
    document = json.loads(
        _run(
            capsys,
            "design",
            "--scenario",
            str(scenario),
            "--articles-per-day",
            "2000000",
            "--format",
            "json",
        )
    )
    assert document["result"]["cost_per_day"].startswith("62.037037")
    assert document["explanation"]["verdict"].startswith("fits the budget: $62.04")


def test_selfhost_flags(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    png = tmp_path / "selfhost.png"
    out = _run(
        capsys,
        "selfhost",
        "--api-input-per-mtok",
        "2.5",
        "--api-output-per-mtok",
        "10",
        "--input-tokens",
        "1000",
        "--output-tokens",
        "200",
        "--gpu-hourly-usd",
        "2",
        "--throughput-tokens-per-s",
        "1000",
        "--plot",
        str(png),
    )
    assert "API per request = 1000 × $2.5/1M + 200 × $10/1M = $0.004500" in out
    assert "one replica beats the API above 0.123 req/s" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_every_calculator_runs_from_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert "cheapest on demand: H100" in _run(capsys, "gpus", "--model-class", "7b")
    assert "static batches of 2 waste 14.3 %" in _run(
        capsys,
        "padding",
        "--output-lengths",
        "uniform:1,2",
        "--batch-size",
        "2",
        "--simulate-requests",
        "0",
    )
    spot = _run(
        capsys,
        "spot",
        "--spot-usd-per-hour",
        "1",
        "--on-demand-usd-per-hour",
        "3",
        "--interruptions-per-hour",
        "0",
        "--runs",
        "3",
        "--work-hours",
        "2",
        "--checkpoint-interval-s",
        "3600",
        "--checkpoint-s",
        "36",
    )
    assert "spot $1.000 × billed hours = $2.02" in spot
    auto = _run(
        capsys,
        "autoscale",
        "--hourly-rps",
        "0,2,8,2",
        "--capacity-rps",
        "5",
        "--batch-slots",
        "1",
        "--replica-usd-per-hour",
        "1",
        "--cold-start-s",
        "360",
        "--idle-timeout-s",
        "100",
    )
    assert "scale-to-zero is cheapest at $4.10" in auto
    strategy = _run(
        capsys,
        "strategy",
        "--queries-per-day",
        "1000",
        "--model-input-per-mtok",
        "2.5",
        "--model-output-per-mtok",
        "10",
        "--tuned-input-per-mtok",
        "0.3",
        "--tuned-output-per-mtok",
        "1.2",
        "--training-usd",
        "500",
        "--context-tokens",
        "50000",
    )
    assert "fine-tune is cheapest at $653.30" in strategy


def test_bad_input_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("design:\n  articles_per_dya: 5\n")
    assert main(["plan", "design", "--scenario", str(scenario)]) == 2
    assert "articles_per_dya" in capsys.readouterr().err
    assert main(["plan", "gpus", "--utilisation", "2"]) == 2


def test_catalog_file_overrides(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    catalog = tmp_path / "gpus.yaml"
    catalog.write_text(
        yaml.safe_dump(
            {
                "gpus": {
                    "A10G": {
                        "prices": [
                            {
                                "provider": "aws",
                                "kind": "spot",
                                "usd_per_hour": "0.20",
                                "as_of": "2026-02",
                                "source": "our quote",
                            }
                        ]
                    }
                }
            }
        )
    )
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        yaml.safe_dump({"design": {k: v for k, v in HAND.items() if k != "gpu_hourly_usd"}})
    )
    out = _run(capsys, "design", "--scenario", str(scenario), "--catalog", str(catalog))
    assert "$12.41/day" in out  # 62.037 GPU-h × $0.20
    assert "our quote" in out


@contextmanager
def fake_upstream_thread() -> Iterator[str]:
    """The fake upstream on its own event loop (the CLI runs ``asyncio.run`` itself)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fake = FakeUpstream()
    url = asyncio.run_coroutine_threadsafe(fake.start("127.0.0.1", 0), loop).result(10)
    try:
        yield url
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_measure_against_the_fake_upstream(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_upstream_thread() as url:
        out = _run(
            capsys,
            "measure",
            "--base-url",
            url + "/v1",
            "--model",
            "gpt-4o-mini",
            "--concurrency",
            "1,2",
            "--requests",
            "4",
            "--output-tokens",
            "8",
        )
    assert "By concurrency" in out and "output tokens/s at concurrency" in out
