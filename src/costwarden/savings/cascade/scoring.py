"""How a cascade scores a tier's answer: each signal is a number in [0, 1], then combined.

Signals:

- **text** (refusal / hedge): 0 when the answer contains a refusal phrase, ``hedge_cap``
  when it hedges ("I'm not sure"), else 1. A gate, not a vote: no confidence elsewhere makes
  a refusal acceptable.
- **logprob**: the geometric-mean probability of the answer's tokens,
  ``exp(mean(token logprob))`` — 1 when every token was certain; present only when the
  upstream returned logprobs (OpenAI chat).
- **verifier**: a cheap model's grade of the answer, an integer 0-10 read as n/10; 0 when the
  grade cannot be read (a verifier that does not vouch for an answer does not accept it).

Combined: ``min(text, weighted mean of the numeric signals present)``, or ``text`` alone when
none is present. Any monotone combination would do for acceptance, since thresholds are
calibrated on the combined score; this one keeps the score readable (a mean of
probabilities) and lets a refusal veto everything.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from costwarden.providers.base import CHAT, MESSAGES
from costwarden.savings.cascade.config import ScorerConfig

_GRADE = re.compile(r"\b(10|[0-9])\b")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


@dataclass(frozen=True, slots=True)
class Score:
    value: float
    text: float
    logprob: float | None = None
    verifier: float | None = None

    def describe(self) -> str:
        parts = [f"score {self.value:.2f}", f"text {self.text:.2f}"]
        if self.logprob is not None:
            parts.append(f"logprob {self.logprob:.2f}")
        if self.verifier is not None:
            parts.append(f"verifier {self.verifier:.2f}")
        return ", ".join(parts)


def answer_text(api: str, answer: dict[str, Any]) -> str:
    """The generated text of a non-streamed chat or messages answer."""
    if api == MESSAGES:
        blocks = answer.get("content") or []
        return "".join(
            b.get("text") or "" for b in blocks if isinstance(b, dict) and b.get("type") == "text"
        )
    choices = answer.get("choices") or [{}]
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, str) else ""


def text_signal(text: str, config: ScorerConfig) -> float:
    folded = text.translate(_APOSTROPHES).lower()
    if any(phrase in folded for phrase in config.refusals):
        return 0.0
    if any(phrase in folded for phrase in config.hedges):
        return config.hedge_cap
    return 1.0


def logprob_signal(api: str, answer: dict[str, Any]) -> float | None:
    """``exp(mean logprob)`` of the first choice's content tokens; None without logprobs."""
    if api != CHAT:
        return None
    choices = answer.get("choices") or [{}]
    logprobs = choices[0].get("logprobs") if isinstance(choices[0], dict) else None
    tokens = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(tokens, list):
        return None
    values = [t["logprob"] for t in tokens if isinstance(t, dict) and _is_number(t.get("logprob"))]
    if not values:
        return None
    return math.exp(sum(values) / len(values))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def grade_signal(text: str) -> float:
    """The verifier's reply read as a grade: the first integer 0-10, over 10 (0 if none)."""
    match = _GRADE.search(text)
    return int(match.group(1)) / 10 if match else 0.0


def combine(
    config: ScorerConfig, text: float, logprob: float | None, verifier: float | None
) -> Score:
    weighted = [(logprob, config.logprob_weight), (verifier, config.verifier_weight)]
    present = [(value, weight) for value, weight in weighted if value is not None]
    total_weight = sum(weight for _, weight in present)
    value = text
    if present and total_weight > 0:
        mean = sum(v * w for v, w in present) / total_weight
        value = min(text, mean)
    return Score(value, text, logprob, verifier)


def verifier_body(
    api: str, payload: dict[str, Any], answer: str, prompt: str, max_tokens: int
) -> dict[str, Any]:
    """The grading request: the client's conversation, the tier's answer as the assistant's
    turn, then the grading instruction. The conversation is sent as it came (not quoted
    into a template), so the grader's prompt is the client's prompt plus the answer plus the
    instruction — what the admission reserves for it (``CascadeStage``)."""
    messages = list(payload.get("messages") or [])
    messages.append({"role": "assistant", "content": answer})
    messages.append({"role": "user", "content": prompt})
    body: dict[str, Any] = {"messages": messages, "max_tokens": max_tokens, "temperature": 0}
    if api == MESSAGES and payload.get("system") is not None:
        body["system"] = payload["system"]
    return body
