"""Model cascades: a virtual model whose tiers are tried cheapest first.

A client asks for a cascade's name. ``CascadeStage`` points the request at tier 0 (so it
resolves and is validated like any request), asks the admission to reserve the worst case of
every other model it may call (the dearer tiers, and the verifier's grading calls), and hands
the upstream call to ``CascadeExecutor``. The executor calls tier after tier through the
pipeline's unary call — each one priced and kept as an attempt of the client's one record —
scores each answer (``cascade_scoring``) and accepts the first whose score reaches its tier's
threshold. The last tier is always accepted; an upstream error on a tier escalates to the
next; if the last tier fails, the best-scored earlier answer is served rather than an error.

Every tier runs non-streamed, because an answer must be whole to be scored; a streamed
request gets the accepted answer replayed as SSE (``answers.replay_stream``), so its first
token arrives only once the cascade has decided.

Once the record is final, ``on_finish`` makes the accepted tier the record's served model
(the verifier's call may have been the last attempt) and prices the saving: what the top tier
would have charged for the accepted answer's usage, minus what every call of the cascade
cost — negative when escalation made the request dearer than asking the top tier at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from costwarden.errors import InvalidRequest, UnknownModel
from costwarden.providers.base import CHAT, MESSAGES
from costwarden.records import Attempt, Saving, TokenUsage, UsageRecord
from costwarden.savings.cascade.config import CascadeConfig
from costwarden.savings.cascade.scoring import (
    Score,
    answer_text,
    combine,
    grade_signal,
    logprob_signal,
    text_signal,
    verifier_body,
)
from costwarden.savings.services import StageServices
from costwarden.savings.stages import (
    BaseStage,
    Exchange,
    Executed,
    Reply,
    UnaryCall,
    UnaryResult,
)

CASCADE_HEADER = b"x-costwarden-cascade"
_NOTE = "cascade"
_OUTPUT_FIELDS = ("max_completion_tokens", "max_tokens")
# Tokens a chat format adds per message beyond its text (as the admission counts them).
_MESSAGE_OVERHEAD = 4


@dataclass(frozen=True, slots=True)
class Outcome:
    """Which tier answered a cascaded request (kept on its ``Exchange``)."""

    cascade: CascadeConfig
    tier: int  # index of the accepted tier
    attempt: Attempt  # the accepted tier's answering attempt
    score: Score | None  # None for the last tier, accepted without scoring
    fallback: bool = False  # served below threshold because the tiers above it failed

    @property
    def model(self) -> str:
        return self.cascade.tiers[self.tier].model

    def describe(self) -> str:
        n = len(self.cascade.tiers)
        text = f"accepted tier {self.tier + 1} of {n} ({self.model})"
        if self.score is not None:
            text += f", {self.score.describe()}"
        if self.fallback:
            text += ", below threshold: the tiers above it failed"
        return text

    def header(self) -> bytes:
        value = f"{self.model}; tier={self.tier + 1}/{len(self.cascade.tiers)}"
        if self.score is not None:
            value += f"; score={self.score.value:.2f}"
        return value.encode()


@dataclass(slots=True)
class _Candidate:
    tier: int
    result: UnaryResult
    answer: dict[str, Any]
    score: Score | None


class CascadeExecutor:
    """Runs one cascade's tiers for a request (see the module docstring); stateless."""

    def __init__(self, cascade: CascadeConfig, providers: Mapping[str, str]) -> None:
        self._cascade = cascade
        self._providers = providers

    async def execute(self, ex: Exchange, call: UnaryCall) -> Executed:
        tiers = self._cascade.tiers
        best: _Candidate | None = None
        failed: UnaryResult | None = None
        for index, tier in enumerate(tiers):
            result = await call(tier.model, self._tier_body(ex, tier.model))
            if result.status >= 400 or result.answer is None:
                failed = result
                continue
            if index == len(tiers) - 1:
                return self._accept(ex, _Candidate(index, result, result.answer, None))
            assert tier.threshold is not None  # checked by CascadeConfig
            score = await self._score(ex, call, result.answer, tier.threshold)
            candidate = _Candidate(index, result, result.answer, score)
            if score.value >= tier.threshold:
                return self._accept(ex, candidate)
            if best is None or _value(best) < score.value:
                best = candidate
        if best is not None:
            return self._accept(ex, best, fallback=True)
        assert failed is not None  # a cascade has at least two tiers
        return Executed(failed.status, failed.body, None)

    def _tier_body(self, ex: Exchange, model: str) -> dict[str, Any]:
        body = dict(ex.payload)
        if self._asks_logprobs(ex, model):
            body["logprobs"] = True
        return body

    def _asks_logprobs(self, ex: Exchange, model: str) -> bool:
        """Logprobs are asked of OpenAI chat tiers the client did not ask them of."""
        return (
            self._cascade.scorer.logprobs
            and ex.api == CHAT
            and self._providers.get(model) == "openai"
            and ex.payload.get("logprobs") is not True
        )

    async def _score(
        self, ex: Exchange, call: UnaryCall, answer: dict[str, Any], threshold: float
    ) -> Score:
        config = self._cascade.scorer
        text = answer_text(ex.api, answer)
        gate = text_signal(text, config)
        logprob = logprob_signal(ex.api, answer) if config.logprobs else None
        verifier = config.verifier
        # Grading costs a call: skip it when even a perfect grade could not reach the
        # threshold (a refusal, a hedge capped below it, very low logprobs).
        if verifier is None or combine(config, gate, logprob, 1.0).value < threshold:
            return combine(config, gate, logprob, None)
        bound = _output_bound(ex.payload)
        max_tokens = min(verifier.max_tokens, bound) if bound else verifier.max_tokens
        body = verifier_body(ex.api, ex.payload, text, verifier.prompt, max_tokens)
        graded = await call(verifier.model, body)
        grade = 0.0  # a verifier that failed has not vouched for the answer
        if graded.status < 400 and graded.answer is not None:
            grade = grade_signal(answer_text(ex.api, graded.answer))
        return combine(config, gate, logprob, grade)

    def _accept(self, ex: Exchange, chosen: _Candidate, *, fallback: bool = False) -> Executed:
        answer = chosen.answer
        if self._asks_logprobs(ex, self._cascade.tiers[chosen.tier].model):
            answer = _without_logprobs(answer)
        outcome = Outcome(self._cascade, chosen.tier, chosen.result.attempt, chosen.score, fallback)
        ex.notes[_NOTE] = outcome
        body = orjson.dumps(answer)
        return Executed(chosen.result.status, body, answer, ((CASCADE_HEADER, outcome.header()),))


def _value(candidate: _Candidate) -> float:
    return candidate.score.value if candidate.score is not None else 0.0


def _without_logprobs(answer: dict[str, Any]) -> dict[str, Any]:
    choices = [
        {**c, "logprobs": None} if isinstance(c, dict) else c for c in answer.get("choices") or []
    ]
    return {**answer, "choices": choices}


def _output_bound(payload: Mapping[str, Any]) -> int | None:
    for name in _OUTPUT_FIELDS:
        value = payload.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


class CascadeStage(BaseStage):
    """Turns a request for a cascade's name into a cascaded call (see module docstring)."""

    name = _NOTE

    def __init__(self, cascades: tuple[CascadeConfig, ...], services: StageServices) -> None:
        self._services = services
        settings = services.settings
        names = {m for c in cascades for m in c.models} | {
            c.scorer.verifier.model for c in cascades if c.scorer.verifier is not None
        }
        providers = {}
        for model in names:
            config = settings.model(model)
            assert config is not None  # Settings checks every tier is configured
            providers[model] = config.endpoints[0].provider
        self._cascades = {c.name: c for c in cascades}
        self._executors = {c.name: CascadeExecutor(c, providers) for c in cascades}
        self._default_bound = settings.policy.default_max_output_tokens
        self._reject_unpriced = settings.gateway.unknown_model_pricing == "reject"

    async def on_request(self, ex: Exchange) -> Reply | None:
        cascade = self._cascades.get(ex.model)
        if cascade is None or ex.executor is not None:
            return None
        if ex.api not in (CHAT, MESSAGES):
            raise InvalidRequest(
                f"'{ex.model}' is a cascade: it answers chat completions and messages only",
                param="model",
            )
        self._check_priced(cascade, ex.record)
        first, *dearer = cascade.models
        ex.model = first
        ex.also_reserve = (*ex.also_reserve, *dearer, *self._grading_reserve(cascade, ex))
        ex.executor = self._executors[cascade.name]
        return None

    def _check_priced(self, cascade: CascadeConfig, record: UsageRecord) -> None:
        """Every model the cascade may call must have a price when the gateway rejects
        unpriced models: an unpriced tier would be left out of the reservation (the pipeline
        checks tier 0 only, the model it resolves)."""
        if not self._reject_unpriced:
            return
        verifier = cascade.scorer.verifier
        for name in (*cascade.models, *([verifier.model] if verifier else [])):
            if self._services.cost_of(name, TokenUsage(), record.created_at) is None:
                raise UnknownModel(
                    f"cascade '{cascade.name}' calls '{name}', which has no known price; "
                    "configure its pricing (or set gateway.unknown_model_pricing: "
                    "record_unknown)",
                    param="model",
                )

    def _grading_reserve(self, cascade: CascadeConfig, ex: Exchange) -> tuple[str, ...]:
        """The verifier, once per worst case its grading calls may cost.

        The admission prices each entry of ``also_reserve`` at the request's prompt bound p and
        output bound b: ``in·p + out·b``. A grading call sends the prompt, the answer (at most b
        tokens) and the instruction (at most T tokens), and generates v <= b tokens:
        ``in·(p + b + T) + out·v``. With input no dearer than output (true of every priced
        API model), k entries cover it when ``(k-1)·p + (k-2)·b >= T``, so
        ``k = 2 + ceil(T / b)`` is enough whatever p is; one grading per tier below the top.
        """
        verifier = cascade.scorer.verifier
        if verifier is None:
            return ()
        bound = _output_bound(ex.payload) or self._default_bound
        instruction = len(verifier.prompt.encode()) + 2 * _MESSAGE_OVERHEAD  # bytes >= tokens
        copies = 2 + math.ceil(instruction / bound)
        return (verifier.model,) * (copies * (len(cascade.tiers) - 1))

    def on_finish(self, ex: Exchange) -> None:
        outcome = ex.notes.get(_NOTE)
        if not isinstance(outcome, Outcome):
            return  # not cascaded, or every tier failed: nothing was served
        record = ex.record
        _serve_from(record, outcome.attempt)
        top = outcome.cascade.models[-1]
        usage = outcome.attempt.usage
        full = self._services.cost_of(top, usage, record.created_at) if usage else None
        saved = full - record.cost if full is not None and record.cost is not None else None
        record.savings.append(Saving(_NOTE, saved, 0, outcome.describe()))


def _serve_from(record: UsageRecord, attempt: Attempt) -> None:
    """The record names the model that answered, not the last call (a grading call)."""
    record.resolved_model = attempt.model
    record.provider = attempt.provider
    record.upstream_model = attempt.upstream_model
    record.reported_model = attempt.reported_model
