"""What a batch item costs: the list price when sent directly, the batch price via a Batch API.

Batch API usage is billed at a discount. genai-prices carries batch prices for many models as
price variants (``when={"processing": "batch"}``, dated): those are used first, since they are
the provider's own published numbers per model. A model without one falls back to the
provider's batch discount from the config (``batch.batch_api.discount_pct``, OpenAI and
Anthropic: 50 %). Either way the record says so: its price source ends in ``:batch``
(catalog batch price) or ``:batch-discount`` (config discount), and the version names it.
A negotiated ``discount_pct`` on the model still applies on top, as for any request.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
from genai_prices.data_snapshot import get_snapshot

from costwarden.batch.config import BatchApiConfig
from costwarden.config import EndpointConfig, ModelConfig
from costwarden.pricing import PriceBook, ResolvedPrice
from costwarden.pricing.catalog import catalog_model_ref, catalog_provider_id
from costwarden.pricing.genai import price_from_model_price

_BATCH_CONTEXT = {"processing": "batch"}


class BatchPricer:
    def __init__(self, prices: PriceBook, config: BatchApiConfig) -> None:
        self._prices = prices
        self._config = config

    def direct(
        self, model: ModelConfig, endpoint: EndpointConfig, at: datetime
    ) -> ResolvedPrice | None:
        """Sent one by one (packed concurrency): the price any request there pays."""
        return self._prices.price_for(model, endpoint, at)

    def batch_api(
        self, model: ModelConfig, endpoint: EndpointConfig, at: datetime
    ) -> ResolvedPrice | None:
        """Sent through the provider's Batch API: its batch price (see module docstring)."""
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        if model.pricing.mode == "catalog":
            catalog = catalog_batch_price(model, endpoint, at)
            if catalog is not None:
                return catalog.discounted(model.pricing.discount_pct)
        base = self._prices.price_for(model, endpoint, at)
        pct = self._config.discount_pct.get(endpoint.provider)
        if base is None or pct is None:
            return base  # no known batch discount: billed (and recorded) at the list price
        discounted = base.discounted(pct)
        return dataclasses.replace(
            discounted,
            source=f"{base.source}:batch-discount",
            version=f"{base.version} batch -{pct}%",
        )


def catalog_batch_price(
    model: ModelConfig, endpoint: EndpointConfig, at: datetime
) -> ResolvedPrice | None:
    """genai-prices' batch price of the model at ``at``; None when it has none."""
    try:
        provider, info = get_snapshot().find_provider_model(
            catalog_model_ref(model, endpoint),
            None,
            catalog_provider_id(model.pricing, endpoint),
            None,
        )
    except LookupError:
        return None
    standard = info.get_prices(at)
    batch = info.get_prices(at, _BATCH_CONTEXT)
    if batch == standard:
        return None
    version = f"genai-prices {genai_prices.__version__} {provider.id}/{info.id} batch"
    price = price_from_model_price(batch, version)
    return dataclasses.replace(price, source=f"{price.source}:batch")


def per_mtok(rate: Decimal) -> Decimal:
    """USD per million tokens (for docs and tables)."""
    return rate * Decimal(1_000_000)
