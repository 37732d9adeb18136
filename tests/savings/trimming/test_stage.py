"""Context trimming through the gateway: real HTTP, the fake upstream sees the trimmed prompt,
the record carries a ``trim`` saving priced at the model's input price."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from costwarden.pricing.tokens import TokenCounter
from costwarden.providers.fake_upstream import FakeUpstream
from costwarden.records import TokenUsage
from costwarden.savings.trimming.stage import (
    CONTEXT_HEADER,
    context_block,
)
from tests.savings.conftest import RunningGateway, StartGateway, model, savings_settings

QUESTION = "Which drug lowers LDL cholesterol by inhibiting HMG-CoA reductase?"
ANSWER = "Statins such as atorvastatin inhibit HMG-CoA reductase, lowering LDL cholesterol."
DISTRACTORS = [
    "Insulin is a hormone that regulates blood glucose levels after meals.",
    "Aspirin irreversibly inhibits cyclooxygenase and reduces platelet aggregation.",
    "The Great Wall of China stretches for thousands of kilometres across the north.",
    "Cholesterol is carried in the blood by lipoproteins of several densities.",
    "Photosynthesis converts light energy into chemical energy in green plants.",
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Beta blockers reduce heart rate and blood pressure by blocking adrenaline.",
    "Metformin lowers hepatic glucose production in type 2 diabetes.",
]
PASSAGES = [*DISTRACTORS[:4], ANSWER, *DISTRACTORS[4:]]


TRIMMING = {"enabled": True, "trim": {"policy": {"top_k": 2}}}


async def _gateway(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> RunningGateway:
    base = f"{upstream.base_url}/v1"
    anthropic_endpoint = {"provider": "anthropic", "upstream_model": "claude-sonnet-4-20250514"}
    models = [
        model("gpt-4o-mini", base),
        model("claude-sonnet-4", base, endpoint=anthropic_endpoint),
    ]
    gw = await start_gateway(savings_settings(tmp_path, models, {"trimming": TRIMMING}))
    gw.upstream = upstream
    return gw


def _client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=gw.key, max_retries=0)


async def _chat(gw: RunningGateway, content: str, extension: dict[str, Any] | None) -> Any:
    extra = {"costwarden": extension} if extension is not None else None
    return await _client(gw).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": content}],
        extra_body=extra,
    )


def _sent_text(upstream: FakeUpstream) -> str:
    body = upstream.requests[-1].body
    assert "costwarden" not in body  # the extension never goes upstream
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else content[0]["text"]


async def test_upstream_gets_only_the_best_passages_and_the_saving_is_recorded(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    trimmed = await _chat(gw, QUESTION, {"passages": PASSAGES})
    sent = _sent_text(upstream)
    assert sent.startswith(CONTEXT_HEADER)
    assert sent.endswith(QUESTION)
    assert f"[1] {ANSWER}" in sent
    assert "[2] " in sent and "[3] " not in sent

    # The same passages placed by the client itself: what sending everything costs.
    everything = await _chat(gw, context_block(PASSAGES) + QUESTION, None)
    small = await gw.record(trimmed.headers["x-request-id"])
    full = await gw.record(everything.headers["x-request-id"])
    assert small.usage.input_tokens < full.usage.input_tokens / 2
    assert full.savings == []

    [saving] = small.savings
    assert saving.kind == "trim"
    assert saving.detail is not None and saving.detail.startswith("kept 2 of 9 passages")
    counter = TokenCounter()
    kept = sent[: len(sent) - len(QUESTION)]
    all_tokens = counter.count("gpt-4o-mini", context_block(PASSAGES))
    # Ranked order changes the block's text, not its token count, beyond a token or two.
    assert abs(saving.tokens_saved - (all_tokens - counter.count("gpt-4o-mini", kept))) <= 2
    services = gw.services.stage_services
    usage = TokenUsage(input_tokens=saving.tokens_saved)
    expected = services.cost_of("gpt-4o-mini", usage, small.created_at)
    assert expected is not None and expected > Decimal(0)
    assert saving.cost_saved == expected


async def test_request_policy_overrides_the_configured_one(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    counter = TokenCounter()
    budget = counter.count("gpt-4o-mini", ANSWER)
    await _chat(gw, QUESTION, {"passages": PASSAGES, "max_context_tokens": budget, "top_k": 9})
    sent = _sent_text(upstream)
    kept = [p for p in PASSAGES if p in sent]
    assert kept == [ANSWER]
    assert sum(counter.count("gpt-4o-mini", p) for p in kept) <= budget

    await _chat(gw, QUESTION, {"passages": PASSAGES, "top_k": 4, "question": "blood pressure"})
    sent = _sent_text(upstream)
    assert sent.index(DISTRACTORS[6]) < sent.index(QUESTION)  # ranked against "question"
    assert "[4] " in sent and "[5] " not in sent


async def test_anthropic_content_blocks_get_a_first_text_block(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key=gw.key, max_retries=0)
    response = await client.messages.with_raw_response.create(
        model="claude-sonnet-4",
        max_tokens=50,
        messages=[{"role": "user", "content": [{"type": "text", "text": QUESTION}]}],
        extra_body={"costwarden": {"passages": PASSAGES, "top_k": 1}},
    )
    blocks = upstream.requests[-1].body["messages"][-1]["content"]
    assert blocks[0]["text"] == context_block([ANSWER])
    assert blocks[1] == {"type": "text", "text": QUESTION}
    record = await gw.record(response.headers["x-request-id"])
    assert [s.kind for s in record.savings] == ["trim"]


async def test_malformed_extension_is_a_400_and_requests_without_it_pass_untouched(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    with pytest.raises(openai.BadRequestError, match="passages"):
        await _chat(gw, QUESTION, {"passages": "not a list"})
    with pytest.raises(openai.BadRequestError, match="keep policy"):
        await _chat(gw, QUESTION, {"passages": PASSAGES, "top_k": 0})
    plain = await _chat(gw, QUESTION, None)
    assert upstream.requests[-1].body["messages"] == [{"role": "user", "content": QUESTION}]
    assert (await gw.record(plain.headers["x-request-id"])).savings == []


async def test_sentences_per_passage_sends_only_the_best_sentences(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway)
    padded = f"The weather in Paris was mild that spring. {ANSWER} Tickets cost ten euros."
    passages = [*DISTRACTORS[:4], padded]
    extension = {"passages": passages, "top_k": 1, "sentences_per_passage": 1}
    response = await _chat(gw, QUESTION, extension)
    sent = _sent_text(upstream)
    assert sent == context_block([ANSWER]) + QUESTION
    record = await gw.record(response.headers["x-request-id"])
    [saving] = record.savings
    counter = TokenCounter()
    everything = counter.count("gpt-4o-mini", context_block(passages))
    kept = counter.count("gpt-4o-mini", context_block([ANSWER]))
    # everything was counted in the caller's order, the stage counts it in rank order
    assert abs(saving.tokens_saved - (everything - kept)) <= 2
