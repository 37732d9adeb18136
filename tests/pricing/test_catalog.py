"""PriceBook: catalog prices equal genai-prices' own calculation, custom prices, caching."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import genai_prices
import pytest
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import ModelPrice

from costwarden.config import ModelConfig, Settings, settings_from_dict
from costwarden.pricing import PriceBook, ResolvedPrice
from costwarden.pricing.genai import price_from_model_price
from costwarden.pricing.resolved import WORST_CASE_SCALE
from costwarden.records import TokenUsage

AT = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)


def _settings(*models: dict[str, Any]) -> Settings:
    return settings_from_dict({"models": list(models)})


def _model(name: str, provider: str = "openai", **extra: Any) -> dict[str, Any]:
    endpoint = {"api_base": f"http://{name}.test", "provider": provider}
    endpoint.update(extra.pop("endpoint", {}))
    return {"name": name, "endpoints": [endpoint], **extra}


def _price(book: PriceBook, model: ModelConfig, at: datetime = AT) -> ResolvedPrice:
    price = book.price_for(model, model.endpoints[0], at)
    assert price is not None
    return price


def _genai_usage(usage: TokenUsage) -> genai_prices.Usage:
    return genai_prices.Usage(
        input_tokens=usage.input_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
    )


CATALOG_CASES = [
    ("openai", "gpt-4o", TokenUsage(input_tokens=1234, cache_read_tokens=1000, output_tokens=567)),
    ("openai", "gpt-4o-mini", TokenUsage(input_tokens=98765, output_tokens=4321)),
    (
        "openai",
        "o1",
        TokenUsage(
            input_tokens=5000, cache_read_tokens=2048, output_tokens=9000, reasoning_tokens=8000
        ),
    ),
    (
        "openai",
        "o3",
        TokenUsage(
            input_tokens=700, cache_read_tokens=128, output_tokens=3000, reasoning_tokens=2500
        ),
    ),
    (
        "anthropic",
        "claude-3-5-sonnet-latest",
        TokenUsage(
            input_tokens=12000, cache_read_tokens=8000, cache_write_tokens=3000, output_tokens=800
        ),
    ),
    (
        "anthropic",
        "claude-sonnet-4-20250514",
        TokenUsage(
            input_tokens=50000, cache_read_tokens=40000, cache_write_tokens=9000, output_tokens=1
        ),
    ),
    ("openai", "text-embedding-3-small", TokenUsage(input_tokens=8191)),
    ("google", "gemini-1.5-pro", TokenUsage(input_tokens=1000, output_tokens=2000)),
    ("google", "gemini-1.5-pro", TokenUsage(input_tokens=200_000, output_tokens=2000)),
    (
        "deepseek",
        "deepseek-chat",
        TokenUsage(input_tokens=3000, cache_read_tokens=1000, output_tokens=50),
    ),
    ("perplexity", "sonar", TokenUsage(input_tokens=100, output_tokens=100)),
]


@pytest.mark.parametrize(("provider", "ref", "usage"), CATALOG_CASES)
@pytest.mark.parametrize(
    "at",
    [
        datetime(2025, 3, 1, 3, 0, tzinfo=UTC),  # before o3's 2025-06-10 cut; deepseek peak
        datetime(2025, 9, 1, 20, 0, tzinfo=UTC),  # after it; deepseek off-peak
    ],
)
def test_catalog_cost_equals_genai_prices(
    provider: str, ref: str, usage: TokenUsage, at: datetime
) -> None:
    # Endpoints speak the openai/anthropic wire protocols; other catalogs are named explicitly.
    pricing = {"catalog_provider": provider, "catalog_model": ref}
    settings = _settings(_model("m", pricing=pricing))
    model = settings.models[0]
    cost = _price(PriceBook(settings), model, at).cost(usage)
    expected = genai_prices.calc_price(
        _genai_usage(usage), ref, provider_id=provider, genai_request_timestamp=at
    )
    assert cost.total == expected.total_price
    assert cost.output == expected.output_price
    assert cost.input + cost.output == cost.total
    assert cost.source == "genai-prices"
    assert cost.version.startswith(f"genai-prices {genai_prices.__version__} {provider}/")


def test_tiered_price_switches_at_the_threshold() -> None:
    settings = _settings(
        _model(
            "gemini",
            "openai",
            pricing={"catalog_provider": "google", "catalog_model": "gemini-1.5-pro"},
        )
    )
    price = _price(PriceBook(settings), settings.models[0])
    below = price.cost(TokenUsage(input_tokens=128_000, output_tokens=1_000_000))
    above = price.cost(TokenUsage(input_tokens=128_001, output_tokens=1_000_000))
    assert below.output == Decimal(5)
    assert above.output == Decimal(10)
    # The reservation bound takes the top tier whatever the prompt size.
    assert price.worst_case(1000, 1_000_000) == Decimal("0.0025") + Decimal(10)
    # In integer units (what admission reserves) it is never below the Decimal bound.
    per_input, per_output, per_request = price.worst_rates
    scaled = per_input * 1000 + per_output * 1_000_000 + per_request
    assert Decimal(scaled) / WORST_CASE_SCALE == price.worst_case(1000, 1_000_000)


def test_price_change_dates_are_honoured_and_versioned() -> None:
    settings = _settings(_model("o3"))
    book, model = PriceBook(settings), settings.models[0]
    before = _price(book, model, datetime(2025, 6, 9, 23, 59, tzinfo=UTC))
    after = _price(book, model, datetime(2025, 6, 10, 0, 0, tzinfo=UTC))
    usage = TokenUsage(input_tokens=1_000_000)
    assert before.cost(usage).total == Decimal(10)
    assert after.cost(usage).total == Decimal(2)
    assert after.version.endswith("@ 2025-06-10")
    assert "@" not in before.version


def test_daily_off_peak_window_is_not_served_from_a_stale_cache() -> None:
    settings = _settings(
        _model("deepseek-chat", "openai", pricing={"catalog_provider": "deepseek"})
    )
    book, model = PriceBook(settings), settings.models[0]
    usage = TokenUsage(input_tokens=1_000_000)
    day = datetime(2025, 9, 1, tzinfo=UTC)
    for hour in (1, 12, 17, 23, 12, 1):  # back and forth across the 00:30 / 16:30 switches
        at = day + timedelta(hours=hour)
        expected = genai_prices.calc_price(
            _genai_usage(usage), "deepseek-chat", provider_id="deepseek", genai_request_timestamp=at
        )
        assert _price(book, model, at).cost(usage).total == expected.total_price


def _catalog_prices() -> Iterator[tuple[str, ModelPrice]]:
    for provider in get_snapshot().providers:
        for model in provider.models:
            prices = model.prices
            variants = [prices] if isinstance(prices, ModelPrice) else [c.prices for c in prices]
            for model_price in variants:
                yield f"{provider.id}/{model.id}", model_price


def test_every_catalog_price_costs_exactly_as_genai_prices() -> None:
    """The linear fast path must agree with genai-prices for the whole bundled catalog."""
    usages = [
        TokenUsage(
            input_tokens=3_000, cache_read_tokens=1_000, cache_write_tokens=500, output_tokens=700
        ),
        TokenUsage(input_tokens=250_000, cache_read_tokens=7, output_tokens=1),
        TokenUsage(),
    ]
    checked = 0
    for name, model_price in _catalog_prices():
        price = price_from_model_price(model_price, name)
        for usage in usages:
            expected = model_price.calc_price(_genai_usage(usage))
            cost = price.cost(usage)
            assert cost.total == expected["total_price"], name
            assert cost.output == expected["output_price"], name
            checked += 1
    assert checked > 1000


def test_unknown_model_has_no_price_and_is_listed_unpriced() -> None:
    settings = _settings(_model("gpt-4o"), _model("in-house-llm"), _model("x", "anthropic"))
    book = PriceBook(settings)
    assert book.price_for(settings.models[1], settings.models[1].endpoints[0], AT) is None
    assert book.unpriced(AT) == [
        ("in-house-llm", "http://in-house-llm.test"),
        ("x", "http://x.test"),
    ]
    assert book.describe(settings.models[1], settings.models[1].endpoints[0], AT).endswith(
        "no known price"
    )


def test_catalog_reference_overrides() -> None:
    settings = _settings(
        _model("cheap", endpoint={"upstream_model": "gpt-4o-mini"}),
        _model("alias", pricing={"catalog_model": "gpt-4o"}, endpoint={"upstream_model": "dep-1"}),
        _model(
            "vertex-claude",
            pricing={"catalog_provider": "anthropic", "catalog_model": "claude-3-5-haiku-latest"},
        ),
    )
    book = PriceBook(settings)
    usage = TokenUsage(input_tokens=1_000_000)
    refs = [
        ("gpt-4o-mini", "openai"),
        ("gpt-4o", "openai"),
        ("claude-3-5-haiku-latest", "anthropic"),
    ]
    for model, (ref, provider) in zip(settings.models, refs, strict=True):
        expected = genai_prices.calc_price(
            _genai_usage(usage), ref, provider_id=provider, genai_request_timestamp=AT
        )
        assert _price(book, model).cost(usage).total == expected.total_price


def test_provider_is_recognised_from_the_endpoint_address() -> None:
    groq = _model(
        "llama",
        endpoint={
            "api_base": "https://api.groq.com/openai/v1",
            "upstream_model": "llama-3.3-70b-versatile",
        },
    )
    local = _model("gpt-4o", endpoint={"api_base": "http://127.0.0.1:9999/v1"})
    settings = _settings(groq, local)
    book = PriceBook(settings)
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000)
    for model, ref, provider in [
        (settings.models[0], "llama-3.3-70b-versatile", "groq"),
        (settings.models[1], "gpt-4o", "openai"),
    ]:
        expected = genai_prices.calc_price(
            _genai_usage(usage), ref, provider_id=provider, genai_request_timestamp=AT
        )
        price = _price(book, model)
        assert price.cost(usage).total == expected.total_price
        assert f" {provider}/" in price.version


def test_discount_applies_to_every_component() -> None:
    settings = _settings(
        _model(
            "sonnet",
            "anthropic",
            pricing={"discount_pct": "12.5"},
            endpoint={"upstream_model": "claude-sonnet-4-20250514"},
        ),
        _model(
            "gemini",
            pricing={
                "catalog_provider": "google",
                "catalog_model": "gemini-1.5-pro",
                "discount_pct": "50",
            },
        ),
    )
    book = PriceBook(settings)
    usage = TokenUsage(
        input_tokens=300_000, cache_read_tokens=1000, cache_write_tokens=2000, output_tokens=4000
    )
    for model, ref, provider, factor in [
        (settings.models[0], "claude-sonnet-4-20250514", "anthropic", Decimal("0.875")),
        (settings.models[1], "gemini-1.5-pro", "google", Decimal("0.5")),
    ]:
        price = _price(book, model)
        expected = genai_prices.calc_price(
            _genai_usage(usage), ref, provider_id=provider, genai_request_timestamp=AT
        )
        cost = price.cost(usage)
        assert cost.total == expected.total_price * factor
        assert cost.output == expected.output_price * factor
        assert price.version.endswith(f"-{model.pricing.discount_pct}%")


def test_worst_case_bounds_every_split_of_the_prompt() -> None:
    settings = _settings(
        _model("sonnet", "anthropic", endpoint={"upstream_model": "claude-3-5-sonnet"})
    )
    price = _price(PriceBook(settings), settings.models[0])
    bound = price.worst_case(10_000, 2_000)
    # Cache writes (3.75/MTok) are the dearest prompt tokens.
    assert bound == Decimal("3.75") * 10_000 / 1_000_000 + Decimal(15) * 2_000 / 1_000_000
    for reads, writes in [(0, 0), (10_000, 0), (0, 10_000), (5_000, 5_000)]:
        usage = TokenUsage(
            input_tokens=10_000,
            cache_read_tokens=reads,
            cache_write_tokens=writes,
            output_tokens=2_000,
        )
        assert price.cost(usage).total <= bound


@pytest.mark.parametrize(
    ("upstream", "ref", "provider"),
    [("openai", "gpt-4o", "openai"), ("gemini", "gemini-1.5-pro", "google")],
)
def test_cache_tokens_beyond_input_are_billed_not_refused(
    upstream: str, ref: str, provider: str
) -> None:
    settings = _settings(
        _model(upstream, pricing={"catalog_provider": provider, "catalog_model": ref})
    )
    price = _price(PriceBook(settings), settings.models[0])
    inconsistent = TokenUsage(input_tokens=10, cache_read_tokens=11, output_tokens=3)
    # Taken as a prompt of at least the 11 cached tokens, priced exactly as genai-prices would.
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=11, cache_read_tokens=11, output_tokens=3),
        ref,
        provider_id=provider,
        genai_request_timestamp=AT,
    )
    assert price.cost(inconsistent).total == expected.total_price


CUSTOM = {
    "mode": "custom",
    "custom": [
        {"effective_from": "2025-07-01T00:00:00Z", "input_per_mtok": "2", "output_per_mtok": "6"},
        {
            "effective_from": "2025-01-01T00:00:00Z",
            "input_per_mtok": "4",
            "output_per_mtok": "8",
            "cache_read_per_mtok": "1",
        },
    ],
}


def test_custom_prices_pick_the_latest_entry_in_force() -> None:
    settings = _settings(_model("tuned", pricing=CUSTOM))
    book, model = PriceBook(settings), settings.models[0]
    usage = TokenUsage(input_tokens=1_000_000, cache_read_tokens=500_000, output_tokens=1_000_000)
    assert book.price_for(model, model.endpoints[0], datetime(2024, 12, 31, tzinfo=UTC)) is None
    january = _price(book, model, datetime(2025, 3, 1, tzinfo=UTC))
    assert january.cost(usage).total == Decimal(2) + Decimal("0.5") + Decimal(8)
    # No cache price in the July entry: cache reads are billed as plain input.
    july = _price(book, model, datetime(2025, 7, 1, tzinfo=UTC))
    assert july.cost(usage).total == Decimal(2) + Decimal(6)
    assert july.source == "custom"
    assert july.version.startswith("custom @ 2025-07-01T00:00:00+00:00 sha256:")
    # Going back in time re-resolves rather than serving July's cached price.
    assert _price(book, model, datetime(2025, 6, 30, 23, 59, tzinfo=UTC)) == january


def test_resolved_price_is_cached_per_route_and_period() -> None:
    settings = _settings(_model("gpt-4o"), _model("o3"))
    book = PriceBook(settings, cache_size=1)
    gpt, o3 = settings.models
    first = _price(book, gpt)
    assert _price(book, gpt, AT + timedelta(days=30)) is first  # same price period: cached
    # With room for one route, alternating routes evicts and re-resolves, still correctly.
    assert _price(book, o3).cost(TokenUsage(output_tokens=1_000_000)).total == Decimal(8)
    again = _price(book, gpt)
    assert again is not first
    assert again == first


def test_naive_timestamps_are_utc() -> None:
    settings = _settings(_model("o3"))
    book, model = PriceBook(settings), settings.models[0]
    naive = _price(book, model, datetime(2025, 6, 10, 0, 0))  # naive on purpose: read as UTC
    assert naive.version.endswith("@ 2025-06-10")


def test_describe_names_the_route_and_rates() -> None:
    settings = _settings(_model("gpt-4o"))
    line = PriceBook(settings).describe(settings.models[0], settings.models[0].endpoints[0], AT)
    assert line.startswith("gpt-4o via http://gpt-4o.test (catalog openai/gpt-4o): $2.5/MTok in")
    assert "$10/MTok out" in line
