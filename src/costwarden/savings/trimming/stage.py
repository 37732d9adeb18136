"""The gateway stage of RAG context trimming.

A client that wants its retrieved context trimmed sends the passages beside the prompt, in an
extension field of the request body (chat.completions or messages)::

    "costwarden": {
        "passages": ["...", "..."],       # required: the retrieved chunks, as plain text
        "question": "...",                # what to rank them against; default: the text of
                                          # the last user message
        "max_context_tokens": 1500,       # optional keep policy, overriding the configured
        "top_k": 5,                       # one field by field (see ``trimming.select``)
        "cutoff": 1.0,
        "sentences_per_passage": 3        # send only each kept passage's 3 best sentences
    }

The field never goes upstream. The stage re-ranks the passages (``savings.trimming``), keeps
the best under the policy and puts them, best first, at the start of the last user message::

    Context passages, most relevant first:

    [1] <best passage>

    [2] <next passage>

    <the user's own text>

(a message whose content is a list of parts gets the block as a first text part; a request
without a user message gets a new one). What was cut is recorded as a ``trim`` saving: the
tokens of the context block with every passage minus those of the block that was sent,
priced at the input price of the model of each upstream call that was billed (a retry or a
cascade tier is sent the trimmed prompt too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from costwarden.errors import InvalidRequest
from costwarden.providers.base import CHAT, MESSAGES
from costwarden.records import Saving, TokenUsage
from costwarden.savings.prompt import last_user_text
from costwarden.savings.services import StageServices
from costwarden.savings.stages import BaseStage, Exchange, Reply
from costwarden.savings.trimming.config import KeepPolicy, TrimmingConfig
from costwarden.savings.trimming.trimmer import PassageTrimmer, TrimResult
from costwarden.savings.trimming.vector_cache import VectorCache

FIELD = "costwarden"
KIND = "trim"
CONTEXT_HEADER = "Context passages, most relevant first:"
_POLICY_FIELDS = {
    "top_k": "top_k",
    "max_context_tokens": "max_tokens",
    "cutoff": "cutoff",
    "sentences_per_passage": "sentences_per_passage",
}


@dataclass(frozen=True, slots=True)
class TrimRequest:
    passages: tuple[str, ...]
    question: str
    policy: KeepPolicy


@dataclass(frozen=True, slots=True)
class _Trimmed:
    tokens_saved: int
    detail: str


def context_block(passages: Sequence[str]) -> str:
    numbered = "\n\n".join(f"[{n}] {text}" for n, text in enumerate(passages, start=1))
    return f"{CONTEXT_HEADER}\n\n{numbered}\n\n"


def insert_context(payload: dict[str, Any], block: str) -> None:
    """Put ``block`` at the start of the last user message (see the module docstring)."""
    messages = payload.setdefault("messages", [])
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                message["content"] = [{"type": "text", "text": block}, *content]
            else:
                message["content"] = block + (content if isinstance(content, str) else "")
            return
    messages.append({"role": "user", "content": block})


def parse_request(api: str, payload: dict[str, Any], config: TrimmingConfig) -> TrimRequest:
    """The extension field, validated; ``InvalidRequest`` (a 400) when it is malformed."""
    raw = payload.get(FIELD)
    if not isinstance(raw, dict):
        raise InvalidRequest(f"'{FIELD}' must be an object")
    passages = raw.get("passages")
    if not isinstance(passages, list) or not all(isinstance(p, str) for p in passages):
        raise InvalidRequest(f"'{FIELD}.passages' must be a list of strings")
    if len(passages) > config.max_passages:
        raise InvalidRequest(f"'{FIELD}.passages' holds more than {config.max_passages}")
    if any(len(p) > config.max_passage_chars for p in passages):
        raise InvalidRequest(f"a passage is longer than {config.max_passage_chars} characters")
    question = raw.get("question", last_user_text(payload))
    if not isinstance(question, str):
        raise InvalidRequest(f"'{FIELD}.question' must be a string")
    overrides = {ours: raw[theirs] for theirs, ours in _POLICY_FIELDS.items() if theirs in raw}
    try:
        policy = config.trim.policy.model_copy(update=overrides)
        policy = KeepPolicy.model_validate(policy.model_dump())  # model_copy does not validate
    except ValueError as exc:
        raise InvalidRequest(f"invalid '{FIELD}' keep policy: {exc}") from exc
    if policy.sentences_per_passage is not None and config.trim.dense_unit != "sentence":
        raise InvalidRequest(
            f"invalid '{FIELD}' keep policy: sentences_per_passage needs the gateway's "
            "trimming to rank by sentence (savings.trimming.trim.dense_unit)"
        )
    return TrimRequest(tuple(passages), question, policy)


class TrimmingStage(BaseStage):
    """Trims the passages a request carries in its ``costwarden`` field (module docstring)."""

    name = KIND

    def __init__(self, config: TrimmingConfig, services: StageServices) -> None:
        self._config = config
        self._services = services
        self._trimmer = PassageTrimmer(config.trim, services.tokens)
        self._vectors = VectorCache(config.vector_cache_entries)

    async def on_request(self, ex: Exchange) -> Reply | None:
        if FIELD not in ex.payload or ex.api not in (CHAT, MESSAGES):
            return None
        request = parse_request(ex.api, ex.payload, self._config)
        del ex.payload[FIELD]
        result = await self._trim(request, ex.model)
        kept = result.kept_passages
        if kept:
            insert_context(ex.payload, context_block(kept))
        everything = [request.passages[i] for i in self._order(result)]
        before = self._services.tokens.count(ex.model, context_block(everything))
        after = self._services.tokens.count(ex.model, context_block(kept)) if kept else 0
        detail = (
            f"kept {len(kept)} of {len(request.passages)} passages, "
            f"{result.tokens_after} of {result.tokens_before} passage tokens"
        )
        ex.notes[KIND] = _Trimmed(tokens_saved=before - after, detail=detail)
        return None

    async def _trim(self, request: TrimRequest, model: str) -> TrimResult:
        pool = self._services.embeddings() if self._trimmer.needs_embeddings else None
        return await self._trimmer.trim_async(
            request.question, request.passages, model, pool, request.policy, cache=self._vectors
        )

    @staticmethod
    def _order(result: TrimResult) -> list[int]:
        ranked = np.argsort(-result.scores, kind="stable")
        return [int(i) for i in ranked]

    def on_finish(self, ex: Exchange) -> None:
        trimmed = ex.notes.get(KIND)
        if not isinstance(trimmed, _Trimmed):
            return
        record = ex.record
        # Every call an upstream billed was sent the trimmed prompt (retries, cascade tiers);
        # a request that never reached one saved nothing.
        billed = [a for a in record.attempts if a.usage is not None]
        if not billed:
            return
        usage = TokenUsage(input_tokens=trimmed.tokens_saved)
        cost: Decimal | None = Decimal(0)
        for attempt in billed:
            price = self._services.cost_of(attempt.model, usage, record.created_at)
            cost = None if price is None or cost is None else cost + price
        saving = Saving(
            kind=KIND,
            cost_saved=cost,
            tokens_saved=trimmed.tokens_saved * len(billed),
            detail=trimmed.detail,
        )
        record.savings.append(saving)
