"""Planner inputs: typed models shared by the calculators, YAML scenario files, Decimal money.

A scenario file is a YAML mapping with one optional section per subcommand (``selfhost:``,
``spot:``, …) whose keys are the fields of that calculator's input model, plus ``gpus:`` for
catalog overrides. The command line layers flags over the file, and ledger-derived values (when
asked for) between the two: file < ledger < flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from costwarden.pricing.genai import catalog_price

MILLION = Decimal(1_000_000)
HUNDRED = Decimal(100)
SECONDS_PER_HOUR = Decimal(3600)
HOURS_PER_DAY = Decimal(24)
_MICRO = Decimal("0.000001")


class PlanModel(BaseModel):
    """Base of every planner input: unknown keys are errors (a typo must not be ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiPrice(PlanModel):
    """A per-token API tariff in USD per 1M tokens, optionally looked up in genai-prices.

    Give ``input_per_mtok`` and ``output_per_mtok``, or ``model`` (and ``provider``) to take
    today's catalog price. ``discount_pct`` is taken off both (batch APIs: 50).
    """

    name: str = Field("api", description="label for the API model")
    model: str | None = Field(None, description="genai-prices model ref (price lookup)")
    provider: str | None = Field(None, description="genai-prices provider id")
    input_per_mtok: Decimal = Field(description="USD per 1M input tokens")
    output_per_mtok: Decimal = Field(description="USD per 1M output tokens")
    discount_pct: Decimal = Field(Decimal(0), description="discount taken off both rates")

    @model_validator(mode="before")
    @classmethod
    def _look_up(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or data.get("input_per_mtok") is not None:
            return data
        if not data.get("model"):
            return data  # the field validation then says what is missing
        looked = lookup_api_price(str(data["model"]), str(data.get("provider") or "openai"))
        if looked is None:
            raise ValueError(f"genai-prices has no price for {data['model']!r}")
        out = dict(data)
        out["input_per_mtok"], out["output_per_mtok"] = looked
        out.setdefault("name", data["model"])
        return out

    def _factor(self) -> Decimal:
        return (HUNDRED - self.discount_pct) / HUNDRED

    @property
    def input_rate(self) -> Decimal:
        """USD per input token, after the discount."""
        return self.input_per_mtok * self._factor() / MILLION

    @property
    def output_rate(self) -> Decimal:
        return self.output_per_mtok * self._factor() / MILLION

    def per_request(self, input_tokens: Decimal | int, output_tokens: Decimal | int) -> Decimal:
        return Decimal(input_tokens) * self.input_rate + Decimal(output_tokens) * self.output_rate

    def label(self) -> str:
        rates = f"${plain(self.input_per_mtok)}/${plain(self.output_per_mtok)} per 1M in/out"
        off = f" −{plain(self.discount_pct)} %" if self.discount_pct else ""
        return f"{self.name} ({rates}{off})"


def lookup_api_price(model: str, provider: str) -> tuple[Decimal, Decimal] | None:
    """Today's (input, output) USD per 1M tokens of ``model`` in genai-prices, if known."""
    price, _ = catalog_price(model, provider, datetime.now(UTC))
    if price is None:
        return None
    return price.rates.input * MILLION, price.rates.output * MILLION


def plain(value: Decimal) -> str:
    """A Decimal without trailing zeros or exponent: 0.15000000 → 0.15, 1E+2 → 100."""
    return f"{value.normalize():f}"


def usd(value: float | Decimal) -> Decimal:
    """A simulation's float (or an exact Decimal) as money rounded to the micro-dollar."""
    exact = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    return exact.quantize(_MICRO, rounding=ROUND_HALF_EVEN)


def ceil_int(value: Decimal) -> int:
    """The smallest integer >= value (Decimal has no exact ceiling helper)."""
    whole = int(value)
    return whole if whole >= value else whole + 1


def load_scenario(path: str | Path) -> dict[str, Any]:
    """The sections of a scenario file (a YAML mapping; an empty file is no sections)."""
    text = Path(path).read_text(encoding="utf-8")
    document = yaml.safe_load(text) or {}
    if not isinstance(document, dict):
        raise ValueError(f"{path}: a scenario file is a mapping of sections")
    return document


def section(document: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = document.get(name) or {}
    if not isinstance(value, dict):
        raise ValueError(f"scenario section {name!r} must be a mapping")
    return dict(value)


def merged(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win; nested mappings merge key by key instead of replacing each other."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            current = out.get(key)
            if isinstance(current, dict) and isinstance(value, Mapping):
                out[key] = merged(current, value)
            else:
                out[key] = value
    return out
