"""Resolve a price from the genai-prices catalog, and how long that price stays in force.

genai-prices models a price change as a list of ``ConditionalPrice`` entries: a new price from
a start date (``StartDateConstraint``, UTC midnight) or a daily off-peak window
(``TimeOfDateConstraint``). The chosen price can only change at one of those boundaries, so the
resolved price comes with the half-open window ``[valid_from, valid_until)`` between the
boundaries around the request time, and the PriceBook reuses it for any request in that window.

A price is linear unless one of the token rates we bill is tiered by prompt size; only then is
the ``ModelPrice`` kept for genai-prices to cost each call. The other price keys a catalog entry
may carry (web searches, audio, images, …) are units our token usage never reports, so
genai-prices prices them at zero for our usage and they are left out; tests check the linear
rates against ``calc_price`` over the whole bundled catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import genai_prices
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import (
    ConditionalPrice,
    ModelInfo,
    ModelPrice,
    StartDateConstraint,
    TieredPrices,
    TimeOfDateConstraint,
)

from costwarden.pricing.resolved import ResolvedPrice, TokenRates, per_token

SOURCE = "genai-prices"
ALWAYS_FROM = datetime.min.replace(tzinfo=UTC)
ALWAYS_UNTIL = datetime.max.replace(tzinfo=UTC)
_ZERO = Decimal(0)
_PER_THOUSAND = Decimal(1000)
# The token price keys our usage can hit (TokenUsage maps onto exactly these units).
_BILLED_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
_REQUEST_KEY = "requests_kcount"


@dataclass(frozen=True, slots=True)
class Window:
    """Half-open UTC interval ``[valid_from, valid_until)`` in which a resolved price holds."""

    valid_from: datetime = ALWAYS_FROM
    valid_until: datetime = ALWAYS_UNTIL

    def contains(self, at: datetime) -> bool:
        return self.valid_from <= at < self.valid_until


def catalog_price(
    model_ref: str, provider_id: str, at: datetime
) -> tuple[ResolvedPrice | None, Window]:
    """The catalog price of ``model_ref`` at ``provider_id`` in force at ``at`` (UTC-aware).

    None (valid forever) when genai-prices does not know the provider or the model.
    """
    try:
        provider, model = get_snapshot().find_provider_model(model_ref, None, provider_id, None)
    except LookupError:
        return None, Window()
    model_price = model.get_prices(at)
    version = f"genai-prices {genai_prices.__version__} {provider.id}/{model.id}"
    effective = _effective_label(model, model_price)
    if effective:
        version = f"{version} @ {effective}"
    return price_from_model_price(model_price, version), price_window(model, at)


def provider_id_for_url(api_base: str) -> str | None:
    """The catalog provider whose API lives at ``api_base`` (Azure, Groq, OpenRouter, …), if any."""
    try:
        return get_snapshot().find_provider(None, None, api_base).id
    except LookupError:
        return None


def price_from_model_price(model_price: ModelPrice, version: str) -> ResolvedPrice:
    """A genai-prices ModelPrice as a ResolvedPrice: linear rates, or kept whole if tiered."""
    values = {key: getattr(model_price, key) for key in (*_BILLED_KEYS, _REQUEST_KEY)}
    tiered = any(isinstance(value, TieredPrices) for value in values.values())
    rates = TokenRates(
        input=per_token(_highest(values["input_mtok"])),
        output=per_token(_highest(values["output_mtok"])),
        cache_read=_optional_rate(values["cache_read_mtok"]),
        cache_write=_optional_rate(values["cache_write_mtok"]),
        per_request=_highest(values[_REQUEST_KEY]) / _PER_THOUSAND,
    )
    return ResolvedPrice(
        source=SOURCE,
        version=version,
        rates=rates,
        tiered=model_price if tiered else None,
    )


def _highest(value: Decimal | TieredPrices | None) -> Decimal:
    """A flat price as is; a tiered one as its dearest tier (exact for linear, bound for tiers)."""
    if value is None:
        return _ZERO
    if isinstance(value, TieredPrices):
        return max([value.base, *(tier.price for tier in value.tiers)])
    return value


def _optional_rate(value: Decimal | TieredPrices | None) -> Decimal | None:
    return None if value is None else per_token(_highest(value))


def _conditional_prices(model: ModelInfo) -> list[ConditionalPrice]:
    return [] if isinstance(model.prices, ModelPrice) else list(model.prices)


def _effective_label(model: ModelInfo, chosen: ModelPrice) -> str | None:
    """Describe the constraint that selected ``chosen`` (start date or daily window), if any."""
    for conditional in _conditional_prices(model):
        if conditional.prices is not chosen:
            continue
        constraint = conditional.constraint
        if isinstance(constraint, StartDateConstraint):
            return constraint.start_date.isoformat()
        if isinstance(constraint, TimeOfDateConstraint):
            return f"daily {constraint.start_time.isoformat()}-{constraint.end_time.isoformat()}"
    return None


def price_window(model: ModelInfo, at: datetime) -> Window:
    """The window around ``at`` between consecutive price-change boundaries of ``model``."""
    boundaries = [
        boundary
        for conditional in _conditional_prices(model)
        for boundary in _boundaries_near(conditional, at)
    ]
    before = [b for b in boundaries if b <= at]
    after = [b for b in boundaries if b > at]
    return Window(
        valid_from=max(before, default=ALWAYS_FROM),
        valid_until=min(after, default=ALWAYS_UNTIL),
    )


def _boundaries_near(conditional: ConditionalPrice, at: datetime) -> list[datetime]:
    constraint = conditional.constraint
    if isinstance(constraint, StartDateConstraint):
        # genai-prices compares the request's UTC date: the price starts at UTC midnight.
        return [datetime.combine(constraint.start_date, time.min, tzinfo=UTC)]
    if isinstance(constraint, TimeOfDateConstraint):
        # A daily window switches at its start and end every day; the days around ``at``
        # (two either side, to cover any UTC offset on the constraint's times) hold the
        # nearest switch before and after it.
        days = [at.date() + timedelta(days=offset) for offset in range(-2, 3)]
        return [
            _at_time_utc(day, moment)
            for day in days
            for moment in (constraint.start_time, constraint.end_time)
        ]
    return []


def _at_time_utc(day: date, moment: time) -> datetime:
    combined = datetime.combine(day, moment)
    # Naive constraint times are UTC in genai-prices.
    return combined if combined.tzinfo is not None else combined.replace(tzinfo=UTC)
