"""Price a self-hosted endpoint from what its GPUs cost per hour.

The GPUs are paid for whether or not they are busy, so the cost of an hour is spread over the
work actually done in it:

    per token   = gpu_hourly_usd * gpus / (throughput_tokens_per_s * 3600 * utilisation)
    per request = gpu_hourly_usd * gpus / (requests_per_hour * utilisation)

Throughput is decode (output) throughput; prefill is far cheaper per token, so prompt tokens
are billed at ``input_token_weight`` * the output rate. Cache reads/writes carry no separate
rate here: they are prompt tokens like any other.

The divisions are repeating decimals; they are computed once, at the Decimal context's
precision (28 significant digits by default), and every cost is then a product of those rates.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

from costwarden.config import SelfHostedPrice
from costwarden.pricing.resolved import ResolvedPrice, TokenRates

SOURCE = "self-hosted"
_SECONDS_PER_HOUR = Decimal(3600)
_ZERO = Decimal(0)


def hourly_cost(cfg: SelfHostedPrice) -> Decimal:
    """USD per hour for all the GPUs behind the endpoint."""
    return cfg.gpu_hourly_usd * cfg.gpus


def output_token_rate(cfg: SelfHostedPrice) -> Decimal:
    """USD per generated token; requires ``throughput_tokens_per_s``."""
    if cfg.throughput_tokens_per_s is None:
        raise ValueError("self-hosted price has no throughput_tokens_per_s")
    tokens_per_hour = cfg.throughput_tokens_per_s * _SECONDS_PER_HOUR * cfg.utilisation
    return hourly_cost(cfg) / tokens_per_hour


def request_rate(cfg: SelfHostedPrice) -> Decimal:
    """USD per request; requires ``requests_per_hour``."""
    if cfg.requests_per_hour is None:
        raise ValueError("self-hosted price has no requests_per_hour")
    return hourly_cost(cfg) / (cfg.requests_per_hour * cfg.utilisation)


def self_hosted_rates(cfg: SelfHostedPrice) -> TokenRates:
    """The linear tariff for a self-hosted endpoint (per token or per request)."""
    if cfg.throughput_tokens_per_s is not None:
        output = output_token_rate(cfg)
        return TokenRates(input=output * cfg.input_token_weight, output=output)
    return TokenRates(input=_ZERO, output=_ZERO, per_request=request_rate(cfg))


def parameters_digest(cfg: SelfHostedPrice) -> str:
    """A short stable digest of the parameters, so a stored cost names the inputs it used."""
    canonical = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def self_hosted_price(cfg: SelfHostedPrice) -> ResolvedPrice:
    return ResolvedPrice(
        source=SOURCE,
        version=f"self-hosted sha256:{parameters_digest(cfg)}",
        rates=self_hosted_rates(cfg),
    )
