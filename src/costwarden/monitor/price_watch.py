"""Price watch: which configured models are billed at other rates now than at a reference moment.

A price changes without any request failing: a newer genai-prices catalog, a config edit, a
dated custom price taking effect. Nobody notices until the bill. For every configured model
(its first endpoint: the one the PriceBook describes at start-up) the price in force now is
compared with the price in force at the reference moment; where a per-token rate differs, a
``PriceChange`` carries both rate cards and what the change costs at current volume — the last
seven days' tokens of that model from the ledger priced at new minus old rates.

Assumptions of the impact figure: the volume of the past week repeats; prices are linear
(a tiered catalog price is compared at its highest tier, the bound ``ResolvedPrice.rates``
holds); cache writes are not reported apart by the ledger's aggregates, so they count as plain
input. Per-request fees are left out: the rate cards are per token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from costwarden.config import ModelConfig, Settings
from costwarden.ledger.store import SpendRow, Store
from costwarden.monitor.alerts import Alert
from costwarden.pricing.catalog import PriceBook
from costwarden.pricing.genai import ALWAYS_FROM
from costwarden.pricing.resolved import ResolvedPrice, TokenRates
from costwarden.reports import format_money

VOLUME_WINDOW = timedelta(days=7)
_PER_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class RateCard:
    """USD per million tokens; ``cache_read`` None means cache reads are billed as input."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None

    @classmethod
    def of(cls, rates: TokenRates) -> RateCard:
        cache = None if rates.cache_read is None else rates.cache_read * _PER_MILLION
        return cls(rates.input * _PER_MILLION, rates.output * _PER_MILLION, cache)

    def effective_cache_read(self) -> Decimal:
        return self.input if self.cache_read is None else self.cache_read

    def to_dict(self) -> dict[str, str | None]:
        cache = None if self.cache_read is None else _exact(self.cache_read)
        return {"input": _exact(self.input), "output": _exact(self.output), "cache_read": cache}

    def describe(self) -> str:
        cache = "= input" if self.cache_read is None else f"${_exact(self.cache_read)}"
        return f"in ${_exact(self.input)} / out ${_exact(self.output)} / cache read {cache}"


@dataclass(frozen=True, slots=True)
class PriceChange:
    """One model billed at other per-token rates now than at the reference moment."""

    model: str
    endpoint: str
    old: RateCard
    new: RateCard
    old_version: str
    new_version: str
    effective_from: datetime | None  # when the new price started, when known
    impact_per_week: Decimal  # last 7 days' tokens at new minus old rates (USD, + = dearer)

    def to_dict(self) -> dict[str, Any]:
        start = None if self.effective_from is None else self.effective_from.isoformat()
        return {
            "model": self.model,
            "endpoint": self.endpoint,
            "old": self.old.to_dict(),
            "new": self.new.to_dict(),
            "old_version": self.old_version,
            "new_version": self.new_version,
            "effective_from": start,
            "impact_per_week": _exact(self.impact_per_week),
        }


async def price_changes(
    settings: Settings, store: Store, reference: datetime, now: datetime
) -> list[PriceChange]:
    """Every configured model whose per-token rates at ``now`` differ from those at
    ``reference`` (both UTC-aware), with the weekly cost impact at the last 7 days' volume."""
    book = PriceBook(settings)
    rows = await store.spend(["model"], now - VOLUME_WINDOW, now)
    volume = {row.group["model"]: row for row in rows}
    changes = []
    for model in settings.models:
        change = _change_for(book, model, reference, now, volume.get(model.name))
        if change is not None:
            changes.append(change)
    return changes


def _change_for(
    book: PriceBook,
    model: ModelConfig,
    reference: datetime,
    now: datetime,
    volume: SpendRow | None,
) -> PriceChange | None:
    endpoint = model.endpoints[0]
    old = book.price_for(model, endpoint, reference)
    new, window = book.resolution(model, endpoint, now)
    # A price that appears or vanishes is the unpriced-route warning's business, not a change.
    if old is None or new is None or _card(old) == _card(new):
        return None
    started = window.valid_from
    known_start = started if started != ALWAYS_FROM and started > reference else None
    return PriceChange(
        model=model.name,
        endpoint=endpoint.name,
        old=_card(old),
        new=_card(new),
        old_version=old.version,
        new_version=new.version,
        effective_from=known_start,
        impact_per_week=weekly_impact(_card(old), _card(new), volume),
    )


def weekly_impact(old: RateCard, new: RateCard, volume: SpendRow | None) -> Decimal:
    """The week's tokens priced at ``new`` minus ``old`` (input includes cache reads)."""
    if volume is None:
        return Decimal(0)
    plain_input = volume.input_tokens - volume.cached_tokens
    delta = (
        (new.input - old.input) * plain_input
        + (new.effective_cache_read() - old.effective_cache_read()) * volume.cached_tokens
        + (new.output - old.output) * volume.output_tokens
    )
    return delta / _PER_MILLION


def price_change_alert(change: PriceChange) -> Alert:
    """The alert for a change: a warning when the model got dearer, info when cheaper."""
    dearer = change.impact_per_week > 0 or (
        change.impact_per_week == 0 and change.new.output > change.old.output
    )
    impact = format_money(change.impact_per_week)
    fields: Mapping[str, str] = {
        "model": change.model,
        "old rates /MTok": change.old.describe(),
        "new rates /MTok": change.new.describe(),
        "impact per week": impact,
        "effective from": change.effective_from.isoformat() if change.effective_from else "?",
        "new version": change.new_version,
    }
    return Alert(
        kind="price.change",
        severity="warning" if dearer else "info",
        title=f"Price of {change.model} changed",
        text=f"{change.model} is billed at new rates: {impact} per week at current volume",
        scope=change.model,
        # One alert per model and new price: re-running the check does not repeat it.
        dedup_key=f"price.change:{change.model}:{change.new_version}",
        fields=fields,
    )


def _card(price: ResolvedPrice) -> RateCard:
    return RateCard.of(price.rates)


def _exact(amount: Decimal) -> str:
    # Positional notation, trailing zeros dropped: "2.5", never "2.500000" or "2.5E+0".
    text = f"{amount:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
