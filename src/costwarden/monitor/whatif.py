"""What-if replay: recorded usage re-priced under another model map or price set.

``costwarden whatif --map gpt-4o=gpt-4o-mini --where feature=search --discount-pct 50`` asks:
had the requests of feature *search* gone to gpt-4o-mini, at half price (e.g. batch capacity),
what would the period have cost, per team / model / feature?

Read from the ledger only, grouped by day and model (plus the dimensions asked for): the token
counts of each group are priced at the scenario model's price *in force that day* (dated prices
apply), with the catalog or the config's overrides exactly as the gateway prices a request.
Groups the scenario does not touch keep their recorded cost. Assumptions, stated in the output's
docstring and docs: the other model would have used the same tokens (an estimate: models differ
in length and tokenisation), prices are linear in tokens (tiered prices are charged at their
base tier: aggregates hide each request's size), and cache writes are not re-priced (the ledger
groups count cache reads only). Money stays ``Decimal``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Literal

from costwarden.config import EndpointConfig, ModelConfig, Settings
from costwarden.ledger.store import SpendRow, Store, check_dimensions
from costwarden.pricing import PriceBook
from costwarden.records import TokenUsage

_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class Scenario:
    """Which requests change (``where``: dimension → value, all must match; empty: all) and
    how: another model (``model_map``: recorded model → scenario model) and/or a discount."""

    model_map: Mapping[str, str] = field(default_factory=dict)
    where: Mapping[str, str] = field(default_factory=dict)
    discount_pct: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        check_dimensions(self.where)
        if not Decimal(0) <= self.discount_pct < _HUNDRED:
            raise ValueError("discount_pct must be in [0, 100)")

    def applies_to(self, group: Mapping[str, str | None]) -> bool:
        return all(group.get(dim) == value for dim, value in self.where.items())


@dataclass(slots=True)
class WhatIfRow:
    group: dict[str, str | None]
    requests: int = 0
    actual: Decimal = Decimal(0)
    scenario: Decimal = Decimal(0)
    unpriced: int = 0  # requests whose recorded or scenario cost is unknown (left out of both)

    @property
    def difference(self) -> Decimal:
        return self.scenario - self.actual

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.group,
            "requests": self.requests,
            "actual": f"{self.actual:f}",
            "what_if": f"{self.scenario:f}",
            "difference": f"{self.difference:f}",
            "unpriced": self.unpriced,
        }


class ScenarioPricer:
    """Prices token counts on a model at a day's prices, configured or catalog-only."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._prices = PriceBook(settings)

    def cost(self, model: str, usage: TokenUsage, day: date) -> Decimal | None:
        config = self._settings.model(model) or _catalog_model(model)
        at = datetime.combine(day, time(12), tzinfo=UTC)
        price = self._prices.price_for(config, config.endpoints[0], at)
        return price.cost(usage).total if price is not None else None


def _catalog_model(name: str) -> ModelConfig:
    """A model the gateway does not serve, priced from the catalog by its name."""
    claude = name.startswith("claude")
    provider: Literal["openai", "anthropic"] = "anthropic" if claude else "openai"
    endpoint = EndpointConfig(id="what-if", provider=provider, api_base="https://what-if.invalid")
    return ModelConfig(name=name, endpoints=(endpoint,))


def _usage(row: SpendRow) -> TokenUsage:
    return TokenUsage(
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        cache_read_tokens=row.cached_tokens,
    )


def _scenario_cost(
    row: SpendRow, scenario: Scenario, pricer: ScenarioPricer
) -> Decimal | None:
    """The row's cost under the scenario (its recorded cost when the scenario leaves it)."""
    if not scenario.applies_to(row.group):
        return row.cost
    model = row.group["model"] or ""
    target = scenario.model_map.get(model, model)
    if target == model:
        cost: Decimal | None = row.cost
    elif row.unknown_cost_requests:
        return None  # its tokens include requests with no recorded cost: no fair comparison
    else:
        cost = pricer.cost(target, _usage(row), date.fromisoformat(row.group["day"] or ""))
    if cost is None:
        return None
    return cost * (_HUNDRED - scenario.discount_pct) / _HUNDRED


async def what_if(
    store: Store,
    pricer: ScenarioPricer,
    scenario: Scenario,
    by: Sequence[str],
    span: tuple[datetime, datetime],
) -> list[WhatIfRow]:
    """Actual and scenario cost per ``by`` group over [since, until), dearest first."""
    check_dimensions(by)
    fine = list(dict.fromkeys(["day", "model", *by, *scenario.where]))
    rows = await store.spend(fine, span[0], span[1], {})
    totals: dict[tuple[str | None, ...], WhatIfRow] = {}
    for row in rows:
        key = tuple(row.group[dim] for dim in by)
        total = totals.setdefault(key, WhatIfRow({dim: row.group[dim] for dim in by}))
        total.requests += row.requests
        scenario_cost = _scenario_cost(row, scenario, pricer)
        if scenario_cost is None:  # neither side counts a group the scenario cannot price
            total.unpriced += row.requests
            continue
        total.unpriced += row.unknown_cost_requests
        total.actual += row.cost
        total.scenario += scenario_cost
    return sorted(totals.values(), key=lambda r: r.actual, reverse=True)


def parse_model_map(pairs: Sequence[str]) -> dict[str, str]:
    """``["gpt-4o=gpt-4o-mini", ...]`` → mapping (ValueError on a malformed pair)."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        source, sep, target = pair.partition("=")
        if not sep or not source or not target:
            raise ValueError(f"--map takes MODEL=OTHER_MODEL, got {pair!r}")
        mapping[source] = target
    return mapping


def parse_where(pairs: Sequence[str]) -> dict[str, str]:
    """``["feature=search", ...]`` → mapping (ValueError on a malformed pair)."""
    where: dict[str, str] = {}
    for pair in pairs:
        dim, sep, value = pair.partition("=")
        if not sep or not dim:
            raise ValueError(f"--where takes DIMENSION=VALUE, got {pair!r}")
        where[dim] = value
    return where
