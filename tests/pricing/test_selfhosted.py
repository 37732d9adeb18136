"""Self-hosted GPU cost: hand-computed Decimal rates, and the PriceBook mode that uses them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from costwarden.config import SelfHostedPrice, settings_from_dict
from costwarden.pricing import PriceBook
from costwarden.pricing.selfhosted import (
    output_token_rate,
    parameters_digest,
    request_rate,
    self_hosted_price,
)
from costwarden.records import TokenUsage

AT = datetime(2025, 9, 1, tzinfo=UTC)
PER_TOKEN = SelfHostedPrice(
    gpu_hourly_usd=Decimal(2),
    throughput_tokens_per_s=Decimal(1000),
    utilisation=Decimal("0.5"),
)


def test_per_token_rate_spreads_the_gpu_hour_over_the_tokens_it_serves() -> None:
    # $2/h, 1 GPU, 1000 tok/s, busy half the time: 1.8M tokens per paid hour.
    assert output_token_rate(PER_TOKEN) == Decimal(2) / (Decimal(1000) * 3600 * Decimal("0.5"))
    several = PER_TOKEN.model_copy(update={"gpus": 4, "utilisation": Decimal(1)})
    assert output_token_rate(several) == Decimal(8) / Decimal(3_600_000)


def test_prompt_tokens_are_weighted_and_output_tokens_full_price() -> None:
    price = self_hosted_price(PER_TOKEN)
    rate = Decimal(2) / Decimal(1_800_000)
    cost = price.cost(
        TokenUsage(
            input_tokens=10_000, cache_read_tokens=4_000, output_tokens=900, reasoning_tokens=300
        )
    )
    # Cached prompt tokens are still prompt tokens here; reasoning is inside output_tokens.
    assert cost.input == rate * Decimal("0.1") * 10_000
    assert cost.output == rate * 900
    assert cost.total == cost.input + cost.output
    assert cost.source == "self-hosted"


def test_per_request_price() -> None:
    cfg = SelfHostedPrice(
        gpu_hourly_usd=Decimal(4),
        gpus=2,
        requests_per_hour=Decimal(100),
        utilisation=Decimal("0.8"),
    )
    assert request_rate(cfg) == Decimal("0.1")  # $8/h over 80 paid-for requests
    price = self_hosted_price(cfg)
    assert price.cost(TokenUsage(input_tokens=5000, output_tokens=5000)).total == Decimal("0.1")
    assert price.cost(TokenUsage()).input == Decimal("0.1")
    assert price.worst_case(1_000_000, 1_000_000) == Decimal("0.1")


def test_version_is_a_stable_digest_of_the_parameters() -> None:
    same = SelfHostedPrice(
        gpu_hourly_usd=Decimal(2), throughput_tokens_per_s=Decimal(1000), utilisation=Decimal("0.5")
    )
    assert parameters_digest(same) == parameters_digest(PER_TOKEN)
    busier = PER_TOKEN.model_copy(update={"utilisation": Decimal("0.6")})
    assert parameters_digest(busier) != parameters_digest(PER_TOKEN)
    assert (
        self_hosted_price(PER_TOKEN).version == f"self-hosted sha256:{parameters_digest(PER_TOKEN)}"
    )


def test_pricebook_self_hosted_mode_with_discount() -> None:
    pricing = {
        "mode": "self_hosted",
        "discount_pct": "25",
        "self_hosted": {
            "gpu_hourly_usd": "2",
            "throughput_tokens_per_s": "1000",
            "utilisation": "0.5",
        },
    }
    model_config = {
        "name": "llama",
        "endpoints": [{"api_base": "http://gpu.test"}],
        "pricing": pricing,
    }
    settings = settings_from_dict({"models": [model_config]})
    book, model = PriceBook(settings), settings.models[0]
    price = book.price_for(model, model.endpoints[0], AT)
    assert price is not None
    rate = Decimal(2) / Decimal(1_800_000)
    assert price.cost(TokenUsage(output_tokens=1000)).total == rate * Decimal("0.75") * 1000
    assert price.version.endswith("-25%")
    assert "(self-hosted)" in book.describe(model, model.endpoints[0], AT)
    assert book.unpriced(AT) == []
