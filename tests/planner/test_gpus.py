"""The GPU catalog: every figure sourced and dated, overrides, the fitted prompt weight."""

from __future__ import annotations

from decimal import Decimal

import pytest

from costwarden.planner.gpus import (
    GpusInputs,
    compare_gpus,
    explain_gpus,
    fit_input_weight,
    load_catalog,
    tokens_per_s_at,
)
from tests.planner.test_selfhost import TEST_GPU


def test_bundled_catalog_is_complete_and_sourced() -> None:
    catalog = load_catalog()
    assert {"A10G", "L4", "L40S", "A100-40GB", "A100-80GB", "H100", "H200"} <= set(catalog.gpus)
    for gpu in catalog.gpus.values():
        kinds = {p.kind for p in gpu.prices}
        assert kinds == {"on_demand", "spot"}, gpu.name
        for entry in (*gpu.prices, *gpu.throughput):
            assert entry.source and entry.as_of[:2] == "20", (gpu.name, entry)
        for figure in gpu.throughput:
            assert figure.estimate == bool(figure.note) or not figure.estimate, figure
        assert catalog.figures(gpu.name, "7b"), gpu.name
    # Spot prices float: all of them are marked as estimates.
    assert all(p.estimate for g in catalog.gpus.values() for p in g.prices if p.kind == "spot")


def test_published_figure_is_used_where_it_matches() -> None:
    catalog = load_catalog()
    # TensorRT-LLM v1.0 perf overview, Llama-3.1-8B FP8 on H100, ISL/OSL 1000/1000.
    figure = catalog.figure("h100", "7b", 1000, 1000)
    assert (figure.tokens_per_s, figure.estimate) == (Decimal(15220), False)
    assert tokens_per_s_at(figure, 1000, 1000, Decimal("0.7")) == Decimal(15220)


def test_fitted_input_weight() -> None:
    catalog = load_catalog(TEST_GPU)
    assert fit_input_weight(catalog.figures("TestGPU", "7b")) == Decimal("0.5")
    # A10G: q = 1300/180, w = 128·(q − 1)/(2048 − 128·q) = 0.70886…
    weight, how = catalog.input_weight("A10G", "7b")
    q = Decimal(1300) / Decimal(180)
    assert weight == 128 * (q - 1) / (2048 - 128 * q)
    assert "fitted" in how
    assert catalog.input_weight("TestGPU", "70b")[1].startswith("default")


def test_overrides_come_first_and_replace_same_keys() -> None:
    override = {
        "A10G": {
            "prices": [
                {
                    "provider": "aws",
                    "kind": "spot",
                    "usd_per_hour": "0.25",
                    "as_of": "2026-02",
                    "source": "negotiated",
                }
            ],
            "throughput": [
                {
                    "model_class": "7b",
                    "input_tokens": 2048,
                    "output_tokens": 128,
                    "tokens_per_s": "250",
                    "as_of": "2026-02",
                    "source": "plan measure",
                }
            ],
        },
        "MI300X": {"memory_gb": 192, "memory_bandwidth_gbs": 5300},
    }
    catalog = load_catalog(override)
    assert catalog.price("a10g", "spot").usd_per_hour == Decimal("0.25")
    assert catalog.price("A10G", "on_demand").usd_per_hour == Decimal("1.006")  # kept
    spots = [p for p in catalog.gpu("A10G").prices if p.kind == "spot"]
    assert len(spots) == 1  # the bundled aws spot entry was replaced
    assert catalog.figure("A10G", "7b", 2048, 128).tokens_per_s == Decimal(250)
    assert catalog.gpu("MI300X").memory_gb == 192
    with pytest.raises(ValueError, match="no 7b throughput"):
        catalog.figure("MI300X", "7b", 100, 100)
    with pytest.raises(ValueError, match="no GPU"):
        catalog.gpu("TPU")


def test_compare_gpus_hand_computed() -> None:
    catalog = load_catalog(TEST_GPU)
    result = compare_gpus(
        catalog, GpusInputs(input_tokens=512, output_tokens=128, utilisation=Decimal("0.5"))
    )
    row = next(r for r in result.rows if r.gpu == "TestGPU")
    # $1.8 ÷ (640 tok/s × 3600 × 0.5) × 1e6 = $1.5625 per 1M output tokens; spot half that.
    assert row.tokens_per_s == Decimal(640)
    assert row.on_demand_per_mtok == Decimal("1.5625")
    assert row.spot_per_mtok == Decimal("0.78125")
    cheapest = result.cheapest("on_demand")
    assert cheapest is not None and cheapest.gpu == "H100"  # FP8 H100 beats the rest
    assert "H100" in explain_gpus(result).verdict
    assert {r.gpu for r in compare_gpus(catalog, GpusInputs(model_class="70b")).rows} == {
        "A100-80GB",
        "H100",
        "H200",
    }
