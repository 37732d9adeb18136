"""``plan measure`` against the repo's fake upstream over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from costwarden.planner.measure import MeasureOptions, explain_measure, measure
from costwarden.providers.fake_upstream import FakeUpstream


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    await fake.start("127.0.0.1", 0)
    yield fake
    await fake.stop()


async def test_measures_tokens_and_ttft(upstream: FakeUpstream) -> None:
    # 8 output tokens, 5 ms between stream events: ≥ 35 ms of decoding per request.
    options = MeasureOptions(
        base_url=upstream.base_url + "/v1",
        model="gpt-4o-mini",
        input_tokens=64,
        output_tokens=8,
        concurrency=(1, 4),
        requests=8,
        extra_body={"x_fake": {"output_tokens": 8, "chunk_delay_ms": 5}},
    )
    result = await measure(options)
    serial, parallel = result.levels
    for level in result.levels:
        assert (level.requests, level.errors) == (8, 0)
        assert level.output_tokens == 64  # usage.completion_tokens of each stream
        # The fake counts words (64 − 8 prompt words) + 3 per message + 3.
        assert level.prompt_tokens_mean == 62
        assert 0 < level.ttft_p50_s <= level.ttft_p95_s
        # 7 token gaps of ≥ 5 ms each: at most 200 tokens/s per stream.
        assert 0 < level.decode_tokens_per_s <= 200
    # Four streams at once deliver more tokens per second than one at a time.
    assert parallel.tokens_per_s > 1.5 * serial.tokens_per_s
    assert serial.tokens_per_s == pytest.approx(64 / serial.wall_s)
    assert "concurrency 4" in explain_measure(result).verdict


async def test_errors_are_counted(upstream: FakeUpstream) -> None:
    options = MeasureOptions(
        base_url=upstream.base_url + "/v1",
        model="gpt-4o-mini",
        concurrency=(2,),
        requests=3,
        extra_body={"x_fake": {"status": 503}},
    )
    level = (await measure(options)).levels[0]
    assert (level.errors, level.output_tokens) == (3, 0)
