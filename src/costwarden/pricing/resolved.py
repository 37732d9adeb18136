"""A price resolved for one (model, endpoint, price period), and the cost math on the hot path.

``ResolvedPrice.cost()`` runs once per request, so a linear price is kept as per-token Decimal
rates and costed with a handful of multiplications. Only a tiered catalog price (the rate
depends on the prompt size) is handed back to genai-prices for every call.

Token convention (records.TokenUsage, same as genai-prices): ``input_tokens`` includes cache
reads and cache writes; ``output_tokens`` includes reasoning. When a price has its own cache
read / cache write rate those tokens are taken out of the plain input count, exactly as
genai-prices' unit decomposition does; when it has none they are billed as plain input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal

from genai_prices import Usage
from genai_prices.types import ModelPrice

from costwarden.records import Cost, TokenUsage

_ZERO = Decimal(0)
_PER_MILLION = Decimal(1_000_000)
_DISPLAY_QUANTUM = Decimal("1e-8")
# Worst-case rates are also kept as integers of this many parts of a USD, rounded up: exact for
# any rate with up to five decimals per million tokens (every catalog price), so the
# admission hot path prices a worst case with three integer products instead of Decimals.
WORST_CASE_SCALE = 10**11


@dataclass(frozen=True, slots=True)
class TokenRates:
    """USD per token (and per request) of a linear tariff."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None  # None: cache reads are billed as plain input
    cache_write: Decimal | None = None  # None: cache writes are billed as plain input
    per_request: Decimal = _ZERO

    def scaled(self, factor: Decimal) -> TokenRates:
        return TokenRates(
            input=self.input * factor,
            output=self.output * factor,
            cache_read=None if self.cache_read is None else self.cache_read * factor,
            cache_write=None if self.cache_write is None else self.cache_write * factor,
            per_request=self.per_request * factor,
        )

    def highest_input(self) -> Decimal:
        """The dearest rate any prompt token can be billed at (cache writes often cost more)."""
        return max(self.input, self.cache_read or _ZERO, self.cache_write or _ZERO)


@dataclass(frozen=True, slots=True)
class ResolvedPrice:
    """One price version, ready to cost usage.

    ``rates`` is the linear tariff that ``cost()`` uses. When ``tiered`` is set (a catalog price
    whose rate depends on the prompt size) ``cost()`` asks genai-prices with that exact
    ``ModelPrice`` instead, and ``rates`` holds the highest tier of each rate: an upper bound
    used only by ``worst_case()``. ``factor`` is the negotiated discount, applied to the
    tiered result (linear ``rates`` already have it folded in).
    """

    source: str
    version: str
    rates: TokenRates
    tiered: ModelPrice | None = None
    factor: Decimal = Decimal(1)
    # (dearest input rate, output rate, per request) in 1 / WORST_CASE_SCALE USD, rounded up
    _worst_rates: tuple[int, int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rates = self.rates
        scaled = (rates.highest_input(), rates.output, rates.per_request)
        object.__setattr__(self, "_worst_rates", tuple(map(_scaled_up, scaled)))

    def cost(self, usage: TokenUsage) -> Cost:
        """Exact cost of ``usage``. Never raises: a request must be recorded whatever came back.

        ``input_tokens`` includes cached tokens; an upstream that reports more cached than
        prompt tokens (genai-prices refuses such usage) is taken to have had a prompt at
        least that large, so the cached tokens are billed at their rates and nothing is lost.
        """
        input_tokens = max(usage.input_tokens, usage.cache_read_tokens + usage.cache_write_tokens)
        if self.tiered is not None:
            return self._tiered_cost(self.tiered, usage, input_tokens)
        rates = self.rates
        plain_input = input_tokens
        input_cost = rates.per_request
        if rates.cache_read is not None:
            plain_input -= usage.cache_read_tokens
            input_cost += rates.cache_read * usage.cache_read_tokens
        if rates.cache_write is not None:
            plain_input -= usage.cache_write_tokens
            input_cost += rates.cache_write * usage.cache_write_tokens
        input_cost += rates.input * plain_input
        output_cost = rates.output * usage.output_tokens
        return Cost(
            total=input_cost + output_cost,
            input=input_cost,
            output=output_cost,
            source=self.source,
            version=self.version,
        )

    def worst_case(self, input_tokens: int, max_output_tokens: int) -> Decimal:
        """Upper bound on the cost of a call, for pre-flight budget reservations.

        Every prompt token is assumed to be billed at the dearest input-side rate and every
        output token at the highest output tier, so the actual cost can only be lower.
        """
        rates = self.rates
        return (
            rates.highest_input() * input_tokens
            + rates.output * max_output_tokens
            + rates.per_request
        )

    @property
    def worst_rates(self) -> tuple[int, int, int]:
        """(dearest input rate, output rate, per request) in 1 / ``WORST_CASE_SCALE`` USD per
        token, rounded up: input·[0] + output·[1] + [2] is a request's worst case in those
        units, never below ``worst_case``."""
        return self._worst_rates

    def discounted(self, discount_pct: Decimal) -> ResolvedPrice:
        """The same price with a negotiated percentage off every component."""
        if discount_pct == _ZERO:
            return self
        factor = (Decimal(100) - discount_pct) / Decimal(100)
        return dataclasses.replace(
            self,
            version=f"{self.version} -{discount_pct}%",
            rates=self.rates.scaled(factor),
            factor=self.factor * factor,
        )

    def summary(self) -> str:
        """Human-readable rates, for logs and the admin API."""
        if self.tiered is not None:
            body = f"{self.tiered} (tiered, before discount)"
        else:
            body = _describe_rates(self.rates)
        return f"{body} [{self.source}: {self.version}]"

    def _tiered_cost(self, tiered: ModelPrice, usage: TokenUsage, input_tokens: int) -> Cost:
        calc = tiered.calc_price(
            Usage(
                input_tokens=input_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                output_tokens=usage.output_tokens,
            )
        )
        total = calc["total_price"] * self.factor
        output_cost = calc["output_price"] * self.factor
        # genai-prices leaves per-request fees out of both sides; they belong to sending the
        # request, so input is "everything but output" and input + output == total holds.
        return Cost(
            total=total,
            input=total - output_cost,
            output=output_cost,
            source=self.source,
            version=self.version,
        )


def per_token(price_per_million: Decimal) -> Decimal:
    return price_per_million / _PER_MILLION


def _describe_rates(rates: TokenRates) -> str:
    parts = [f"${_per_mtok(rates.input)}/MTok in"]
    if rates.cache_read is not None:
        parts.append(f"${_per_mtok(rates.cache_read)}/MTok cache read")
    if rates.cache_write is not None:
        parts.append(f"${_per_mtok(rates.cache_write)}/MTok cache write")
    parts.append(f"${_per_mtok(rates.output)}/MTok out")
    if rates.per_request:
        parts.append(f"${rates.per_request.normalize():f}/request")
    return ", ".join(parts)


def _per_mtok(rate: Decimal) -> str:
    # Display only: self-hosted rates are repeating decimals; eight places is plenty to read.
    return f"{(rate * _PER_MILLION).quantize(_DISPLAY_QUANTUM).normalize():f}"


def _scaled_up(rate: Decimal) -> int:
    return int((rate * WORST_CASE_SCALE).to_integral_value(rounding=ROUND_CEILING))
