"""Scenario files, layering, money helpers and generated flags."""

from __future__ import annotations

import argparse
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from costwarden.planner.flags import add_model_flags, flag_values
from costwarden.planner.scenario import ApiPrice, load_scenario, merged, section, usd
from costwarden.planner.selfhost import SelfHostInputs


def test_load_and_layer(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "selfhost:\n  input_tokens: 10\n  api: {input_per_mtok: 1, output_per_mtok: 2}\n"
    )
    document = load_scenario(path)
    layered = merged(section(document, "selfhost"), {"api": {"output_per_mtok": "3"}})
    assert layered == {"input_tokens": 10, "api": {"input_per_mtok": 1, "output_per_mtok": "3"}}
    assert section(document, "spot") == {}
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ValueError, match="mapping"):
        load_scenario(tmp_path / "list.yaml")


def test_api_price_lookup_and_discount() -> None:
    looked = ApiPrice.model_validate({"model": "gpt-4o-mini", "discount_pct": 50})
    # genai-prices: gpt-4o-mini $0.15 / $0.60 per 1M; half of that per token.
    assert looked.input_rate == Decimal("0.075") / 1_000_000
    assert looked.per_request(1000, 100) == Decimal("0.000105")
    with pytest.raises(ValidationError, match="no price"):
        ApiPrice.model_validate({"model": "no-such-model-xyz"})
    assert usd(0.1 + 0.2) == Decimal("0.300000")


def test_generated_flags() -> None:
    parser = argparse.ArgumentParser()
    add_model_flags(parser, SelfHostInputs)
    args = parser.parse_args(
        ["--api-model", "gpt-4o", "--input-tokens", "5", "--utilisations", "0.5, 1"]
    )
    assert flag_values(args, SelfHostInputs) == {
        "api": {"model": "gpt-4o"},
        "input_tokens": "5",
        "utilisations": ["0.5", "1"],
    }
