"""The cascade scorer's signals and how they combine."""

from __future__ import annotations

import math
from typing import Any

import pytest

from costwarden.providers.base import CHAT, MESSAGES
from costwarden.savings.cascade.config import ScorerConfig
from costwarden.savings.cascade.scoring import (
    answer_text,
    combine,
    grade_signal,
    logprob_signal,
    text_signal,
    verifier_body,
)

CONFIG = ScorerConfig()


def _chat(content: str, logprobs: list[float] | None = None) -> dict[str, Any]:
    entries = None if logprobs is None else {"content": [{"logprob": v} for v in logprobs]}
    message = {"role": "assistant", "content": content}
    return {"choices": [{"index": 0, "message": message, "logprobs": entries}]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Paris is the capital of France.", 1.0),
        ("I\u2019m sorry, but I can\u2019t help with that.", 0.0),  # curly apostrophes
        ("I'M NOT SURE, maybe Lyon.", CONFIG.hedge_cap),
        ("I don't know, but I can't help either.", 0.0),  # a refusal outranks a hedge
    ],
)
def test_text_signal_gates_refusals_and_caps_hedges(text: str, expected: float) -> None:
    assert text_signal(text, CONFIG) == expected


def test_phrase_lists_come_from_config() -> None:
    config = ScorerConfig(refusals=("computer says no",), hedges=())
    assert text_signal("Computer says no.", config) == 0.0
    assert text_signal("I'm not sure.", config) == 1.0


def test_logprob_signal_is_the_geometric_mean_token_probability() -> None:
    assert logprob_signal(CHAT, _chat("a b", [-0.1, -0.3])) == pytest.approx(math.exp(-0.2))
    assert logprob_signal(CHAT, _chat("a b")) is None  # upstream sent none
    assert logprob_signal(CHAT, _chat("", [])) is None
    assert logprob_signal(MESSAGES, {"content": [{"type": "text", "text": "x"}]}) is None


@pytest.mark.parametrize(
    ("reply", "grade"), [("9", 0.9), ("Grade: 10/10", 1.0), ("0", 0.0), ("excellent", 0.0)]
)
def test_grade_signal_reads_the_first_integer(reply: str, grade: float) -> None:
    assert grade_signal(reply) == grade


def test_combine_is_the_text_gate_over_the_weighted_mean() -> None:
    assert combine(CONFIG, 1.0, None, None).value == 1.0
    assert combine(CONFIG, 1.0, 0.8, None).value == pytest.approx(0.8)
    assert combine(CONFIG, 1.0, 0.8, 0.4).value == pytest.approx(0.6)
    weighted = ScorerConfig(logprob_weight=1.0, verifier_weight=3.0)
    assert combine(weighted, 1.0, 0.8, 0.4).value == pytest.approx(0.5)
    assert combine(CONFIG, 0.3, 0.9, 1.0).value == 0.3  # a hedge caps a confident answer
    assert combine(CONFIG, 0.0, 1.0, 1.0).value == 0.0  # a refusal vetoes
    score = combine(CONFIG, 1.0, 0.8, 0.4)
    assert score.describe() == "score 0.60, text 1.00, logprob 0.80, verifier 0.40"


def test_answer_text_of_both_protocols() -> None:
    assert answer_text(CHAT, _chat("hello")) == "hello"
    assert answer_text(CHAT, {"choices": [{"message": {"content": None}}]}) == ""
    blocks = [{"type": "thinking", "thinking": "hm"}, {"type": "text", "text": "hi"}]
    assert answer_text(MESSAGES, {"content": blocks}) == "hi"


def test_verifier_body_appends_the_answer_and_the_instruction() -> None:
    payload = {"messages": [{"role": "user", "content": "Q?"}], "system": "Be brief."}
    body = verifier_body(MESSAGES, payload, "A.", "Grade it.", 3)
    assert body["messages"] == [
        {"role": "user", "content": "Q?"},
        {"role": "assistant", "content": "A."},
        {"role": "user", "content": "Grade it."},
    ]
    assert body["system"] == "Be brief." and body["max_tokens"] == 3
    assert payload["messages"] == [{"role": "user", "content": "Q?"}]  # not mutated
    assert "system" not in verifier_body(CHAT, payload, "A.", "Grade it.", 3)
