"""A request and its answer as one fine-tuning conversation (chat completions and Anthropic
messages), what is refused (tools, images), and the repetitiveness of a set of prompts."""

from __future__ import annotations

from typing import Any

import pytest

from costwarden.distill.config import CandidatesConfig
from costwarden.distill.conversation import NotText, conversation, normalise, prompt_hash
from costwarden.distill.similarity import repetitiveness

CHAT_ANSWER = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}}]}


def test_a_chat_request_becomes_messages_ending_with_the_answer() -> None:
    payload = {
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Capital"},
                    {"type": "text", "text": "of France?"},
                ],
            },
        ]
    }
    assert conversation("chat.completions", payload, CHAT_ANSWER) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital\nof France?"},
        {"role": "assistant", "content": "Paris."},
    ]


def test_an_anthropic_request_takes_its_system_field_first_and_skips_thinking() -> None:
    payload = {
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": "Capital of France?"}],
    }
    answer = {
        "content": [
            {"type": "thinking", "thinking": "hmm"},
            {"type": "text", "text": "Paris."},
        ]
    }
    assert conversation("messages", payload, answer) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]


@pytest.mark.parametrize(
    ("api", "payload", "answer"),
    [
        (
            "chat.completions",
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            CHAT_ANSWER,
        ),
        (
            "chat.completions",
            {"messages": [{"role": "user", "content": "weather?"}]},
            {"choices": [{"message": {"content": None, "tool_calls": [{"id": "c1"}]}}]},
        ),
        ("chat.completions", {"messages": [{"role": "tool", "content": "42"}]}, CHAT_ANSWER),
        (
            "messages",
            {"messages": [{"role": "user", "content": "weather?"}]},
            {"content": [{"type": "tool_use", "id": "t", "name": "w", "input": {}}]},
        ),
        ("embeddings", {"input": "text"}, {}),
        ("chat.completions", {"messages": [{"role": "system", "content": "only"}]}, CHAT_ANSWER),
    ],
)
def test_what_is_not_plain_text_is_not_a_conversation(
    api: str, payload: dict[str, Any], answer: dict[str, Any]
) -> None:
    with pytest.raises(NotText):
        conversation(api, payload, answer)


def test_the_prompt_hash_ignores_case_spacing_numbers_and_the_answer() -> None:
    def asked(question: str, answer: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]

    one, two = asked("Order  #1234 status?", "a"), asked("order #98 STATUS?", "b")
    other = asked("Refund order #98?", "a")
    assert normalise("Order  #1234 status?") == "order #0 status?"
    assert prompt_hash(one) == prompt_hash(two) != prompt_hash(other)


def test_templated_prompts_are_near_duplicates_and_varied_ones_are_not() -> None:
    template = (
        "Classify this support ticket into billing, shipping or account and answer with "
        "one word only. Ticket number {n}: my {thing} has a problem since last week"
    )
    things = ["invoice", "parcel", "password", "invoice", "login", "refund", "parcel", "card"]
    templated = [template.format(n=i, thing=t) for i, t in enumerate(things)]
    varied = [
        "Write a haiku about autumn leaves",
        "Explain how a transformer attention head works",
        "What is the capital of Mongolia and its population",
        "Summarise the plot of Hamlet in two sentences",
    ]
    templated_hashes = [prompt_hash([{"role": "user", "content": t}, {}]) for t in templated]
    threshold = CandidatesConfig().near_duplicate_jaccard
    shown = repetitiveness(templated, templated_hashes, threshold)
    assert shown.prompts == 8
    # "invoice" and "parcel" repeat once each: only the number differs, which hashes away.
    assert shown.exact_repeat_share == pytest.approx(4 / 8)
    assert shown.near_duplicate_share == 1.0
    varied_hashes = [prompt_hash([{"role": "user", "content": t}, {}]) for t in varied]
    assert repetitiveness(varied, varied_hashes, threshold).near_duplicate_share == 0.0
    assert repetitiveness([], [], threshold).prompts == 0
