"""The PriceBook: which price applies to a (model, endpoint) at a moment, cached for the hot path.

A model is priced in one of three modes (``PricingConfig.mode``):

- ``catalog``: genai-prices, looked up by ``catalog_model`` or the endpoint's upstream model or
  the public name, at ``catalog_provider`` or the provider genai-prices knows at the endpoint's
  ``api_base`` or the endpoint's wire protocol (openai / anthropic);
- ``custom``: dated ``CustomPrice`` entries from the config, the latest one in force;
- ``self_hosted``: amortised GPU cost (see selfhosted.py).

``discount_pct`` is taken off whichever mode applies. A catalog lookup per request is measurable
on a bare proxy, so each resolved price is cached with the window in which it holds (prices
change on dates, and for a few catalog models at daily off-peak hours); a request outside the
window resolves again. The cache is a bounded dict owned by the PriceBook; nothing is global.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal

from costwarden.config import CustomPrice, EndpointConfig, ModelConfig, PricingConfig, Settings
from costwarden.pricing.genai import (
    ALWAYS_FROM,
    ALWAYS_UNTIL,
    Window,
    catalog_price,
    provider_id_for_url,
)
from costwarden.pricing.resolved import ResolvedPrice, TokenRates, per_token
from costwarden.pricing.selfhosted import self_hosted_price

CUSTOM_SOURCE = "custom"
DEFAULT_CACHE_SIZE = 4096

_CacheKey = tuple[str, str]
_Resolution = tuple[ResolvedPrice | None, Window]


class PriceBook:
    """Resolves and caches prices for the models of one ``Settings``."""

    def __init__(self, settings: Settings, *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self._settings = settings
        self._cache_size = cache_size
        self._cache: dict[_CacheKey, _Resolution] = {}

    def price_for(
        self, model: ModelConfig, endpoint: EndpointConfig, at: datetime
    ) -> ResolvedPrice | None:
        """The price in force at ``at`` (naive = UTC); None when no price is known.

        ``model`` and ``endpoint`` are those of this PriceBook's settings: the cache is keyed
        by their names.
        """
        return self.resolution(model, endpoint, at)[0]

    def resolution(
        self, model: ModelConfig, endpoint: EndpointConfig, at: datetime
    ) -> tuple[ResolvedPrice | None, Window]:
        """``price_for``, with the window in which that answer holds (for callers that
        keep something derived from the price)."""
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        key = (model.name, endpoint.name)
        cached = self._cache.get(key)
        if cached is not None and cached[1].contains(at):
            return cached
        resolution = _resolve(model, endpoint, at)
        self._remember(key, resolution)
        return resolution

    def describe(
        self, model: ModelConfig, endpoint: EndpointConfig, at: datetime | None = None
    ) -> str:
        """One line for logs: what prices this model at this endpoint, and at what rates."""
        price = self.price_for(model, endpoint, at or datetime.now(UTC))
        mode = _describe_mode(model.pricing, endpoint, model)
        route = f"{model.name} via {endpoint.name} ({mode})"
        if price is None:
            return f"{route}: no known price"
        return f"{route}: {price.summary()}"

    def unpriced(self, at: datetime | None = None) -> list[tuple[str, str]]:
        """(model name, endpoint name) of every configured route with no known price at ``at``.

        Called at start-up so the gateway can warn or refuse per
        ``gateway.unknown_model_pricing``.
        """
        moment = at or datetime.now(UTC)
        return [
            (model.name, endpoint.name)
            for model in self._settings.models
            for endpoint in model.endpoints
            if self.price_for(model, endpoint, moment) is None
        ]

    def _remember(self, key: _CacheKey, resolution: _Resolution) -> None:
        if key not in self._cache and len(self._cache) >= self._cache_size:
            # Evict the oldest entry (dicts keep insertion order); routes are few, so this
            # only bounds memory against pathological configs.
            del self._cache[next(iter(self._cache))]
        self._cache[key] = resolution


def _resolve(model: ModelConfig, endpoint: EndpointConfig, at: datetime) -> _Resolution:
    pricing = model.pricing
    price: ResolvedPrice | None
    if pricing.mode == "self_hosted":
        assert pricing.self_hosted is not None  # guaranteed by PricingConfig validation
        price, window = self_hosted_price(pricing.self_hosted), Window()
    elif pricing.mode == "custom":
        price, window = custom_price(pricing.custom, at)
    else:
        price, window = catalog_price(
            catalog_model_ref(model, endpoint), catalog_provider_id(pricing, endpoint), at
        )
    if price is not None:
        price = price.discounted(pricing.discount_pct)
    return price, window


def catalog_model_ref(model: ModelConfig, endpoint: EndpointConfig) -> str:
    return model.pricing.catalog_model or endpoint.upstream_model or model.name


def catalog_provider_id(pricing: PricingConfig, endpoint: EndpointConfig) -> str:
    """Explicit ``catalog_provider``, else the provider serving ``api_base``, else the protocol.

    An OpenAI-compatible endpoint at Azure, Groq or OpenRouter is billed at that provider's
    prices, not OpenAI's; an address genai-prices does not know (a local fake, a private
    proxy) falls back to the wire protocol's provider.
    """
    return pricing.catalog_provider or provider_id_for_url(endpoint.api_base) or endpoint.provider


def custom_price(entries: tuple[CustomPrice, ...], at: datetime) -> _Resolution:
    """The latest entry in force at ``at``, valid until the next entry starts.

    An entry without ``effective_from`` has always been in force. If every entry starts after
    ``at`` there is no price yet (None), until the first one starts.
    """
    dated = sorted(entries, key=_effective_from)
    starts = [_effective_from(entry) for entry in dated]
    in_force = [index for index, start in enumerate(starts) if start <= at]
    if not in_force:
        return None, Window(valid_until=starts[0])
    index = in_force[-1]
    later = [start for start in starts[index + 1 :] if start > starts[index]]
    window = Window(valid_from=starts[index], valid_until=min(later, default=ALWAYS_UNTIL))
    return _custom_resolved(dated[index]), window


def _effective_from(entry: CustomPrice) -> datetime:
    start = entry.effective_from
    if start is None:
        return ALWAYS_FROM
    return start if start.tzinfo is not None else start.replace(tzinfo=UTC)


def _custom_resolved(entry: CustomPrice) -> ResolvedPrice:
    rates = TokenRates(
        input=per_token(entry.input_per_mtok),
        output=per_token(entry.output_per_mtok),
        cache_read=_optional_per_token(entry.cache_read_per_mtok),
        cache_write=_optional_per_token(entry.cache_write_per_mtok),
    )
    start = "always" if entry.effective_from is None else _effective_from(entry).isoformat()
    digest = hashlib.sha256(entry.model_dump_json().encode("utf-8")).hexdigest()[:12]
    return ResolvedPrice(
        source=CUSTOM_SOURCE,
        version=f"custom @ {start} sha256:{digest}",
        rates=rates,
    )


def _optional_per_token(price_per_million: Decimal | None) -> Decimal | None:
    # An unset cache price means "same as input": bill those tokens as plain input.
    return None if price_per_million is None else per_token(price_per_million)


def _describe_mode(pricing: PricingConfig, endpoint: EndpointConfig, model: ModelConfig) -> str:
    if pricing.mode == "catalog":
        provider = catalog_provider_id(pricing, endpoint)
        return f"catalog {provider}/{catalog_model_ref(model, endpoint)}"
    return pricing.mode.replace("_", "-")
