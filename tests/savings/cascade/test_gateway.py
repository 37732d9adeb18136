"""Cascades through the real gateway and fake upstream: tier 0 accepted, escalation on a hedge,
low logprobs, an upstream error or a verifier's low grade, a streamed request replayed, a
budget that refuses a cascade up front, and the start-up checks of the config."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from costwarden.config import settings_from_dict
from costwarden.errors import ConfigError
from costwarden.providers.fake_upstream import FakeUpstream
from costwarden.records import Status
from tests.gateway.test_openai_api import catalog_cost
from tests.savings.conftest import RunningGateway, StartGateway, model, savings_settings

ASK: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]
HEDGE = "I'm not sure, it might be Lyon."


def _variant(name: str, base: str, knobs: str, provider: str = "openai") -> dict[str, Any]:
    """A configured model the fake answers with ``knobs`` (priced as the real model)."""
    real = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-20241022"}[provider]
    endpoint = {"upstream_model": f"{real}?{knobs}", "provider": provider}
    return model(name, base, endpoint=endpoint, pricing={"catalog_model": real})


def _models(upstream: FakeUpstream) -> list[dict[str, Any]]:
    base = f"{upstream.base_url}/v1"
    return [
        model("gpt-4o-mini", base),
        model("gpt-4o", base),
        _variant("mini-hedging", base, f"reply={HEDGE}"),
        _variant("mini-unsure", base, "logprob=-2"),
        _variant("mini-broken", base, "status=400"),
        _variant("mini-gone", base, "status=404"),
        _variant("grader-yes", base, "reply=9"),
        _variant("grader-no", base, "reply=2"),
        _variant("haiku-refusing", base, "reply=I can't help with that.", "anthropic"),
        model(
            "claude-sonnet-4",
            base,
            endpoint={"provider": "anthropic", "upstream_model": "claude-sonnet-4-20250514"},
        ),
    ]


def _cascade(name: str, first: str, top: str = "gpt-4o", **scorer: Any) -> dict[str, Any]:
    tiers = [{"model": first, "threshold": 0.7}, {"model": top}]
    return {"name": name, "tiers": tiers, "scorer": scorer}


CASCADES = [
    _cascade("auto", "gpt-4o-mini"),
    _cascade("auto-hedging", "mini-hedging"),
    _cascade("auto-unsure", "mini-unsure"),
    _cascade("auto-broken", "mini-broken"),
    _cascade("auto-vouched", "gpt-4o-mini", verifier={"model": "grader-yes"}),
    _cascade("auto-doubted", "gpt-4o-mini", verifier={"model": "grader-no"}),
    _cascade("claude-auto", "haiku-refusing", "claude-sonnet-4"),
    _cascade("auto-top-down", "mini-hedging", "mini-broken"),
    _cascade("auto-all-down", "mini-gone", "mini-broken"),
]


async def _gateway(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway, **sections: Any
) -> RunningGateway:
    savings = {"cascades": CASCADES}
    gw = await start_gateway(savings_settings(tmp_path, _models(upstream), savings, **sections))
    gw.upstream = upstream
    return gw


def _client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=gw.key, max_retries=0)


async def _ask(gw: RunningGateway, cascade: str, **extra: Any) -> Any:
    create = _client(gw).chat.completions.with_raw_response.create
    raw = await create(model=cascade, messages=ASK, max_tokens=16, **extra)
    return raw, await gw.record(raw.headers["x-request-id"])


def _sent(upstream: FakeUpstream) -> list[dict[str, Any]]:
    return [r.body for r in upstream.requests if isinstance(r.body, dict)]


async def test_a_confident_first_tier_is_accepted_and_saves(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    raw, record = await _ask(gw, "auto")
    answer = raw.parse()
    assert raw.headers["x-costwarden-cascade"] == "gpt-4o-mini; tier=1/2; score=0.95"
    assert raw.headers["x-costwarden-model"] == "gpt-4o-mini"
    # The cascade asked for logprobs to score the answer; the client did not, so gets none.
    assert _sent(upstream)[-1]["logprobs"] is True
    assert answer.choices[0].logprobs is None
    assert record.status is Status.OK and record.requested_model == "auto"
    assert record.resolved_model == "gpt-4o-mini"
    [attempt] = record.attempts
    assert record.cost == catalog_cost("gpt-4o-mini", attempt.usage)
    [saving] = record.savings
    assert saving.kind == "cascade" and saving.tokens_saved == 0
    assert saving.cost_saved == catalog_cost("gpt-4o", attempt.usage) - record.cost > 0
    assert saving.detail.startswith("accepted tier 1 of 2 (gpt-4o-mini), score 0.95")
    assert Decimal(raw.headers["x-costwarden-saved"]) == saving.cost_saved


async def test_a_client_that_asks_for_logprobs_keeps_them(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    raw, _ = await _ask(gw, "auto", logprobs=True)
    tokens = raw.parse().choices[0].logprobs.content
    assert tokens and all(t.logprob == pytest.approx(-0.05) for t in tokens)


@pytest.mark.parametrize("cascade", ["auto-hedging", "auto-unsure", "auto-broken"])
async def test_a_hedge_low_logprobs_or_an_error_escalate(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway, cascade: str
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    raw, record = await _ask(gw, cascade)
    first = cascade.replace("auto", "mini")
    assert raw.headers["x-costwarden-cascade"] == "gpt-4o; tier=2/2"
    assert raw.headers["x-costwarden-model"] == "gpt-4o"
    assert HEDGE not in raw.parse().choices[0].message.content
    assert [a.model for a in record.attempts] == [first, "gpt-4o"]
    assert record.resolved_model == "gpt-4o" and record.status is Status.OK
    tried, top = record.attempts
    assert top.cost.total == catalog_cost("gpt-4o", top.usage)
    if cascade == "auto-broken":  # an error answer carries no usage: nothing was spent on it
        assert tried.http_status == 400 and tried.cost is None
    else:
        assert tried.cost.total == catalog_cost("gpt-4o-mini", tried.usage) > 0
    assert record.cost == sum(a.cost.total for a in record.attempts if a.cost is not None)
    [saving] = record.savings
    # The top tier's own usage priced on the top tier, minus both calls: the first was waste.
    assert saving.cost_saved == top.cost.total - record.cost
    assert saving.cost_saved < 0 or cascade == "auto-broken"
    assert saving.detail == "accepted tier 2 of 2 (gpt-4o)"


async def test_when_the_top_tier_fails_the_best_lower_answer_is_served(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    raw, record = await _ask(gw, "auto-top-down")
    assert raw.parse().choices[0].message.content == HEDGE
    assert raw.headers["x-costwarden-cascade"] == "mini-hedging; tier=1/2; score=0.30"
    assert record.status is Status.OK and record.resolved_model == "mini-hedging"
    assert [a.http_status for a in record.attempts] == [200, 400]
    assert record.savings[0].detail.endswith("below threshold: the tiers above it failed")
    with pytest.raises(openai.BadRequestError) as error:  # the last tier's own error
        await _ask(gw, "auto-all-down")
    failed = await gw.record(error.value.response.headers["x-request-id"])
    assert failed.status is Status.UPSTREAM_ERROR and len(failed.attempts) == 2
    assert failed.savings == []  # nothing was served, so nothing was saved


async def test_a_verifier_grade_decides_and_its_call_is_priced(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    raw, vouched = await _ask(gw, "auto-vouched")
    grading = _sent(upstream)[-1]
    assert grading["messages"][:-2] == ASK  # the conversation, the answer, the instruction
    assert grading["messages"][-2]["role"] == "assistant" and grading["max_tokens"] == 4
    assert [a.model for a in vouched.attempts] == ["gpt-4o-mini", "grader-yes"]
    # The grading call was last, yet the record names the tier that answered.
    assert vouched.resolved_model == "gpt-4o-mini" == raw.headers["x-costwarden-model"]
    assert vouched.upstream_model == "gpt-4o-mini"
    assert "verifier 0.90" in vouched.savings[0].detail
    _, doubted = await _ask(gw, "auto-doubted")
    assert [a.model for a in doubted.attempts] == ["gpt-4o-mini", "grader-no", "gpt-4o"]
    assert doubted.resolved_model == "gpt-4o"
    assert all(a.cost is not None and a.cost.total > 0 for a in doubted.attempts)


async def test_a_streamed_request_gets_the_accepted_answer_as_sse(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    raw = await _client(gw).chat.completions.with_raw_response.create(
        model="auto-hedging",
        messages=ASK,
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["content-type"] == "text/event-stream"
    parts: list[str] = []
    usage = None
    async for chunk in raw.parse():
        parts.extend(c.delta.content or "" for c in chunk.choices)
        usage = chunk.usage or usage
    record = await gw.record(raw.headers["x-request-id"])
    assert "".join(parts) and HEDGE not in "".join(parts)
    assert usage is not None and usage.completion_tokens == record.attempts[-1].usage.output_tokens
    assert record.stream and [a.model for a in record.attempts] == ["mini-hedging", "gpt-4o"]
    assert all(r.get("stream") is None for r in _sent(upstream)[-2:])  # tiers run whole


async def test_an_anthropic_refusal_escalates(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key=gw.key, max_retries=0)
    raw = await client.messages.with_raw_response.create(
        model="claude-auto", max_tokens=32, messages=ASK
    )
    record = await gw.record(raw.headers["x-request-id"])
    assert raw.headers["x-costwarden-cascade"] == "claude-sonnet-4; tier=2/2"
    [block] = (await raw.parse()).content
    assert isinstance(block, anthropic.types.TextBlock) and "can't help" not in block.text
    assert [a.model for a in record.attempts] == ["haiku-refusing", "claude-sonnet-4"]
    assert "logprobs" not in _sent(upstream)[-2]  # not an OpenAI chat tier


async def test_a_budget_for_the_first_tier_only_refuses_the_cascade_up_front(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    budget = {"name": "tight", "scope": {"user": "alice"}, "period": "day", "limit_usd": "0.0001"}
    gw = await _gateway(tmp_path, upstream, start_gateway, policy={"budgets": [budget]})
    before = len(upstream.requests)
    with pytest.raises(openai.RateLimitError) as refused:
        await _ask(gw, "auto")
    assert refused.value.code == "budget_exceeded"
    assert len(upstream.requests) == before  # no tier was called
    # The same request for tier 0 alone fits: the cascade was refused for its dearer tier.
    direct = await _client(gw).chat.completions.create(
        model="gpt-4o-mini", messages=ASK, max_tokens=16
    )
    assert direct.choices[0].message.content


@pytest.mark.parametrize(
    ("cascade", "error"),
    [
        (_cascade("auto", "gpt-4o-nano"), "unconfigured models"),
        (_cascade("gpt-4o", "gpt-4o-mini"), "name of a configured model"),
        (_cascade("mixed", "gpt-4o-mini", "claude-sonnet-4"), "mixes protocols"),
        (_cascade("v", "gpt-4o-mini", verifier={"model": "nope"}), "unconfigured models"),
        ({"name": "x", "tiers": [{"model": "gpt-4o-mini"}, {"model": "gpt-4o"}]}, "threshold"),
        (
            {"name": "x", "tiers": [{"model": "gpt-4o", "threshold": 0.5}, {"model": "gpt-4o"}]},
            "lists a model twice",
        ),
    ],
)
def test_bad_cascades_fail_at_start_up(tmp_path: Path, cascade: dict[str, Any], error: str) -> None:
    base = "http://127.0.0.1:9/v1"
    models = [
        model("gpt-4o-mini", base),
        model("gpt-4o", base),
        model("claude-sonnet-4", base, endpoint={"provider": "anthropic"}),
    ]
    data = savings_settings(tmp_path, models, {}).model_dump(mode="json")
    data["savings"] = {"cascades": [cascade]}
    with pytest.raises(ConfigError, match=error):
        settings_from_dict(data)


async def test_the_fake_upstream_replies_with_given_text_and_logprobs(
    upstream: FakeUpstream,
) -> None:
    fake = openai.AsyncOpenAI(base_url=f"{upstream.base_url}/v1", api_key="k", max_retries=0)
    knobs = {"reply": "It is Paris.", "logprob": -0.5}
    plain = await fake.chat.completions.create(
        model="gpt-4o-mini", messages=ASK, extra_body={"x_fake": knobs}
    )
    assert plain.choices[0].message.content == "It is Paris."
    assert plain.choices[0].logprobs is None  # not asked for
    asked = await fake.chat.completions.create(
        model="gpt-4o-mini", messages=ASK, logprobs=True, extra_body={"x_fake": knobs}
    )
    assert asked.choices[0].logprobs is not None
    entries = asked.choices[0].logprobs.content or []
    assert [e.token for e in entries] == ["It", " is", " Paris."]
    assert {e.logprob for e in entries} == {-0.5} and asked.usage
    assert asked.usage.completion_tokens == 3
    stream = await fake.chat.completions.create(
        model="gpt-4o-mini", messages=ASK, logprobs=True, stream=True, extra_body={"x_fake": knobs}
    )
    streamed = [
        entry.logprob
        async for chunk in stream
        for choice in chunk.choices
        if choice.logprobs is not None
        for entry in choice.logprobs.content or []
    ]
    assert streamed == [-0.5] * 3
    with pytest.raises(openai.BadRequestError):
        await fake.chat.completions.create(
            model="gpt-4o-mini", messages=ASK, extra_body={"x_fake": {"logprob": 0.5}}
        )
