"""Price drift: is a model billed at other rates now than it was before?

"Before" is, in order of preference:

1. the rate card the price watch saw on an earlier run (``PriceObservation``, kept in the
   store, so it survives restarts and leader changes): a newer genai-prices catalog after a
   deploy, an edited config and a dated price taking effect all differ from it;
2. on the watch's first look at a model, its last bill in the ledger (``BilledPrice``): when
   the price version billed is still what the PriceBook gives for that moment (a dated price
   has since taken effect), that price's exact rates;
3. otherwise (config edited, catalog package replaced) the rates *implied* by that bill: the
   output rate is its output cost per output token, exactly; the input-side rates (input,
   cache read) are today's scaled by billed ÷ today's input cost of the same tokens, which is
   exact when those rates moved together (a discount, a uniform change) and an estimate
   otherwise. Implied rates are rounded to 1e-9 $/MTok: no price has more decimals than that,
   and the division would otherwise leave a ...0001 tail.

A drift whose two price versions are both genai-prices catalog entries from different package
versions is a catalog upgrade (``price.catalog_upgrade``); any other is ``price.change``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from costwarden.config import ModelConfig
from costwarden.ledger.store import SpendRow
from costwarden.ledger.watch import BilledPrice, PriceObservation
from costwarden.monitor.alerts import Alert
from costwarden.monitor.price_watch import PriceChange, RateCard, price_change_alert, weekly_impact
from costwarden.pricing.catalog import PriceBook
from costwarden.pricing.genai import ALWAYS_FROM, SOURCE
from costwarden.pricing.resolved import ResolvedPrice

_PER_MILLION = Decimal(1_000_000)
_RATE_QUANTUM = Decimal("1e-9")


@dataclass(frozen=True, slots=True)
class Baseline:
    """The card a model was billed at before, and where that knowledge comes from."""

    card: RateCard
    version: str
    since: datetime  # first observed, or billed at
    origin: str  # "observed", "billed", "implied by the last bill"


@dataclass(frozen=True, slots=True)
class Drift:
    """One model whose card now differs from its baseline."""

    model: str
    endpoint: str
    before: Baseline
    now: ResolvedPrice
    effective_from: datetime | None  # when the new price started, when known

    @property
    def catalog_upgrade(self) -> bool:
        old, new = _catalog_package(self.before.version), _catalog_package(self.now.version)
        return old is not None and new is not None and old != new

    def change(self, volume: SpendRow | None) -> PriceChange:
        """The ``PriceChange`` with its weekly impact at ``volume`` (the last 7 days)."""
        new = RateCard.of(self.now.rates)
        return PriceChange(
            model=self.model,
            endpoint=self.endpoint,
            old=self.before.card,
            new=new,
            old_version=self.before.version,
            new_version=self.now.version,
            effective_from=self.effective_from,
            impact_per_week=weekly_impact(self.before.card, new, volume),
        )


@dataclass(frozen=True, slots=True)
class DriftCheck:
    drifts: list[Drift]
    observations: list[PriceObservation]  # cards to remember: new, or changed


def check_drifts(
    book: PriceBook,
    models: Sequence[ModelConfig],
    observed: Mapping[str, PriceObservation],
    billed: Mapping[str, BilledPrice],
    now: datetime,
) -> DriftCheck:
    """Compare every model's card at ``now`` (first endpoint) with its baseline."""
    check = DriftCheck([], [])
    for model in models:
        endpoint = model.endpoints[0]
        price, window = book.resolution(model, endpoint, now)
        if price is None:  # an unpriced route is start-up's warning, not a drift
            continue
        seen = observed.get(model.name)
        bill = billed.get(model.name)
        before = _observed(seen) if seen else _billed(book, model, bill, price, now)
        drifted = before is not None and before.card != RateCard.of(price.rates)
        if before is not None and drifted:
            started = window.valid_from
            known = started if started != ALWAYS_FROM and started > before.since else None
            check.drifts.append(Drift(model.name, endpoint.name, before, price, known))
        if seen is None or seen.price_version != price.version or drifted:
            check.observations.append(observation(model.name, endpoint.name, price, now))
    return check


def drift_alert(drift: Drift, change: PriceChange) -> Alert:
    """``price_change_alert``, told where the old rates come from; a catalog upgrade has its
    own kind and key."""
    alert = price_change_alert(change)
    fields = {
        **alert.fields,
        "old version": change.old_version,
        "old rates": f"{drift.before.origin} ({drift.before.since:%Y-%m-%d %H:%M} UTC)",
    }
    if not drift.catalog_upgrade:
        return dataclasses.replace(alert, fields=fields)
    return dataclasses.replace(
        alert,
        kind="price.catalog_upgrade",
        title=f"Price catalog upgrade changed the price of {change.model}",
        dedup_key=f"price.catalog_upgrade:{change.model}:{change.new_version}",
        fields=fields,
    )


def observation(model: str, endpoint: str, price: ResolvedPrice, at: datetime) -> PriceObservation:
    card = RateCard.of(price.rates)
    return PriceObservation(
        model=model,
        endpoint=endpoint,
        price_source=price.source,
        price_version=price.version,
        input_per_mtok=card.input,
        output_per_mtok=card.output,
        cache_read_per_mtok=card.cache_read,
        observed_at=at,
    )


def implied_card(bill: BilledPrice, price: ResolvedPrice) -> RateCard:
    """The card ``bill`` was charged at, recovered against today's ``price`` (module doc, 3)."""
    today = RateCard.of(price.rates)
    at_today = price.cost(bill.usage())
    if (at_today.input, at_today.output) == (bill.cost_input, bill.cost_output):
        return today
    factor = bill.cost_input / at_today.input if at_today.input else Decimal(1)
    output = today.output
    if bill.output_tokens:
        output = bill.cost_output / bill.output_tokens * _PER_MILLION
    cache = None if today.cache_read is None else _rate(today.cache_read * factor)
    return RateCard(_rate(today.input * factor), _rate(output), cache)


def _observed(seen: PriceObservation) -> Baseline:
    card = RateCard(seen.input_per_mtok, seen.output_per_mtok, seen.cache_read_per_mtok)
    return Baseline(card, seen.price_version, seen.observed_at, "observed")


def _billed(
    book: PriceBook,
    model: ModelConfig,
    bill: BilledPrice | None,
    today: ResolvedPrice,
    now: datetime,
) -> Baseline | None:
    """The baseline from the model's last bill (``today``: the first endpoint's price now);
    None when there is no bill to compare."""
    if bill is None:
        return None
    first = model.endpoints[0]
    for endpoint in model.endpoints:
        current = book.price_for(model, endpoint, now)
        if current is not None and current.version == bill.price_version:
            # Still billed at that price (at this endpoint or another): no drift.
            return Baseline(RateCard.of(today.rates), today.version, bill.billed_at, "billed")
    then = book.price_for(model, first, bill.billed_at)
    if then is not None and then.version == bill.price_version:
        # The price in force then has been replaced by a dated one: its exact rates.
        return Baseline(RateCard.of(then.rates), then.version, bill.billed_at, "billed")
    return Baseline(
        implied_card(bill, today), bill.price_version, bill.billed_at, "implied by the last bill"
    )


def _catalog_package(version: str) -> str | None:
    """ "genai-prices 0.2.5 openai/gpt-4o …" → "0.2.5"; None for any other source."""
    parts = version.split(" ", 2)
    return parts[1] if len(parts) > 1 and parts[0] == SOURCE else None


def _rate(per_mtok: Decimal) -> Decimal:
    return per_mtok.quantize(_RATE_QUANTUM).normalize()
