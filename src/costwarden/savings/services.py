"""What savings stages are built with: the gateway's settings, prices and token counter, and
an embedding pool made only when a stage asks for one (loading the model costs ~0.25 s and
~100 MB, which a gateway without embedding stages should not pay)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from costwarden.config import Settings
from costwarden.pricing import PriceBook, TokenCounter
from costwarden.records import TokenUsage
from costwarden.savings.embedding import EmbeddingPool, MiniLMEmbedder


@dataclass(slots=True)
class StageServices:
    settings: Settings
    prices: PriceBook
    tokens: TokenCounter
    _pool: EmbeddingPool | None = field(default=None, repr=False)

    def embeddings(self) -> EmbeddingPool:
        """The one embedding pool of this gateway, made on first use."""
        if self._pool is None:
            self._pool = EmbeddingPool(MiniLMEmbedder())
        return self._pool

    def cost_of(self, model: str, usage: TokenUsage, at: datetime) -> Decimal | None:
        """What ``usage`` costs on ``model``'s first endpoint at ``at`` (None: no price)."""
        config = self.settings.model(model)
        if config is None:
            return None
        price = self.prices.price_for(config, config.endpoints[0], at)
        return price.cost(usage).total if price is not None else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
