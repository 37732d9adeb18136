"""Version watch: a pinned model answered as another version, and what that costs per week.

The request path already raises ``pin.mismatch`` the moment upstream reports another model
than the pin (``policy.pinning``): synchronous, cheap, and without a cost, because the cost
impact needs the model's volume, an aggregate query that has no place on the request path.
This module works from the ledger instead, on the scheduled job: the rows of a recent window
whose ``reported_model`` is not the ``upstream_model`` sent (``Store.version_sightings``) are
kept when their model is pinned and the reported version is neither the pin nor the upstream
model (provider prefixes such as ``openai/`` ignored, as the pin check does). Each new
(model, reported version) becomes one ``version.changed`` alert carrying the impact: the
model's last 7 days of tokens priced at the reported version's price minus the pinned
version's (positive = dearer). The reported version is priced as a configured model when one
has its name, else from the genai-prices catalog at the pinned model's provider, with the
pinned model's negotiated discount; when neither knows it, the alert says the impact is
unknown rather than guessing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from costwarden.config import ModelConfig, Settings
from costwarden.ledger.store import SpendRow
from costwarden.ledger.watch import VersionSighting
from costwarden.monitor.alerts import Alert, Severity
from costwarden.monitor.price_watch import RateCard, weekly_impact
from costwarden.policy.pinning import reported_model_matches
from costwarden.pricing.catalog import PriceBook, catalog_provider_id
from costwarden.pricing.genai import catalog_price
from costwarden.pricing.resolved import ResolvedPrice
from costwarden.reports import format_money


@dataclass(frozen=True, slots=True)
class VersionChange:
    """Requests of ``model`` pinned to ``pinned`` that upstream answered as ``reported``."""

    model: str
    pinned: str
    reported: str
    requests: int  # answered as ``reported`` in the scanned window
    first_seen: datetime
    pinned_card: RateCard | None  # None: the pinned version has no known price
    reported_card: RateCard | None  # None: the reported version has no known price
    impact_per_week: Decimal | None  # None when either card is unknown


def pinned_mismatches(
    pins: Mapping[str, str], sightings: Iterable[VersionSighting], known: frozenset[tuple[str, str]]
) -> list[VersionSighting]:
    """Sightings of pinned models reporting another version, one per (model, reported) not in
    ``known`` (those already alerted on), merged over the upstream models they were sent as."""
    merged: dict[tuple[str, str], VersionSighting] = {}
    for sighting in sightings:
        key = (sighting.model, sighting.reported_model)
        if key in known or not _mismatch(pins, sighting):
            continue
        earlier = merged.get(key)
        merged[key] = sighting if earlier is None else _merged(earlier, sighting)
    return sorted(merged.values(), key=lambda s: (s.model, s.reported_model))


def version_change(
    book: PriceBook,
    settings: Settings,
    sighting: VersionSighting,
    volume: SpendRow | None,
    now: datetime,
) -> VersionChange:
    """The change one mismatch stands for, with its impact at ``volume`` (last 7 days)."""
    pinned = pinned_version(settings.policy.pins, sighting.model) or sighting.model
    pinned_model = settings.model(pinned) or settings.model(sighting.model)
    old = _card(_configured_price(book, pinned_model, now))
    new = _card(reported_price(book, settings, pinned_model, sighting.reported_model, now))
    impact = None if old is None or new is None else weekly_impact(old, new, volume)
    return VersionChange(
        model=sighting.model,
        pinned=pinned,
        reported=sighting.reported_model,
        requests=sighting.requests,
        first_seen=sighting.first_seen,
        pinned_card=old,
        reported_card=new,
        impact_per_week=impact,
    )


def version_change_alert(change: VersionChange, at: float) -> Alert:
    """A warning when the reported version is dearer or its price unknown, else info."""
    impact = change.impact_per_week
    severity: Severity = "info" if impact is not None and impact <= 0 else "warning"
    subject = change.pinned
    if change.model != change.pinned:  # a pinned alias routed as itself
        subject = f"{change.model} (pinned to {change.pinned})"
    return Alert(
        kind="version.changed",
        severity=severity,
        title=f"{change.model} answered as {change.reported}",
        text=(
            f"Upstream answered {change.requests} request(s) for {subject} as "
            f"{change.reported}; {_cost_sentence(change)}."
        ),
        scope=change.model,
        # One alert per model and reported version, however many runs see it.
        dedup_key=f"version.changed:{change.model}:{change.reported}",
        fields={
            "pinned": change.pinned,
            "reported": change.reported,
            "requests seen": str(change.requests),
            "first seen": change.first_seen.isoformat(),
            "pinned rates /MTok": _describe(change.pinned_card),
            "reported rates /MTok": _describe(change.reported_card),
            "impact per week": "unknown" if impact is None else format_money(impact),
        },
        at=at,
    )


def pinned_version(pins: Mapping[str, str], model: str) -> str | None:
    """The version ``model`` should be answered as: itself when it is a pin's target (the
    alias was rewritten to it), the pin's target when it is a pinned alias (``require_pins:
    off`` routes the alias itself), else None (not pinned)."""
    if model in pins.values():
        return model
    return pins.get(model)


def reported_price(
    book: PriceBook,
    settings: Settings,
    pinned_model: ModelConfig | None,
    reported: str,
    now: datetime,
) -> ResolvedPrice | None:
    """The price of the reported version (module docstring); None when unknown."""
    bare = reported.rsplit("/", 1)[-1]
    configured = settings.model(reported) or settings.model(bare)
    if configured is not None:
        return _configured_price(book, configured, now)
    if pinned_model is None:
        return None
    pricing, endpoint = pinned_model.pricing, pinned_model.endpoints[0]
    price, _window = catalog_price(bare, catalog_provider_id(pricing, endpoint), now)
    return None if price is None else price.discounted(pricing.discount_pct)


def _cost_sentence(change: VersionChange) -> str:
    impact = change.impact_per_week
    if impact is None:
        unpriced = change.reported if change.reported_card is None else change.pinned
        return f"no price is known for {unpriced}, so the cost impact is unknown"
    if impact == 0:
        return f"{change.reported} is priced like the pin: no cost impact"
    more = "more" if impact > 0 else "less"
    return (
        f"at its price the last 7 days' volume costs {format_money(abs(impact))} {more} "
        "per week than at the pinned price"
    )


def _mismatch(pins: Mapping[str, str], sighting: VersionSighting) -> bool:
    expected = pinned_version(pins, sighting.model)
    if expected is None:
        return False
    reported, upstream = sighting.reported_model, sighting.upstream_model
    if reported_model_matches(expected, reported):
        return False
    return upstream is None or not reported_model_matches(upstream, reported)


def _merged(one: VersionSighting, other: VersionSighting) -> VersionSighting:
    return VersionSighting(
        one.model,
        one.upstream_model,
        one.reported_model,
        one.requests + other.requests,
        min(one.first_seen, other.first_seen),
    )


def _configured_price(
    book: PriceBook, model: ModelConfig | None, now: datetime
) -> ResolvedPrice | None:
    return None if model is None else book.price_for(model, model.endpoints[0], now)


def _card(price: ResolvedPrice | None) -> RateCard | None:
    return None if price is None else RateCard.of(price.rates)


def _describe(card: RateCard | None) -> str:
    return "unknown" if card is None else card.describe()
