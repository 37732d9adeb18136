"""Prices and token counts: what a call costs (exactly, in Decimal) and how big a request is.

- ``PriceBook`` resolves the price of a (model, endpoint) at a moment — genai-prices' catalog,
  custom dated prices, or amortised self-hosted GPU cost — and caches it for the hot path.
- ``ResolvedPrice`` costs a ``TokenUsage`` exactly and bounds a call's worst case.
- ``TokenCounter`` counts tokens offline with tiktoken, for estimates and reservations.
"""

from costwarden.pricing.catalog import PriceBook
from costwarden.pricing.resolved import ResolvedPrice, TokenRates
from costwarden.pricing.tokens import TokenCounter, TokenizerDataError

__all__ = ["PriceBook", "ResolvedPrice", "TokenCounter", "TokenRates", "TokenizerDataError"]
