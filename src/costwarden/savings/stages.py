"""The seam between the request pipeline and the savings stages.

The pipeline reads as a list of stages (``SavingsStages``) run in configured order once a
request is authenticated, validated and has its record, before its model is resolved and its
worst case reserved::

    trimming → router → cascade → exact cache → semantic cache → (resolve, admit, call) → answer

A stage sees the request as an ``Exchange`` and may

- rewrite it (``ex.payload``, ``ex.model``): context trimming, the learned router;
- answer it without any upstream call by returning a ``Reply``: a cache hit. The pipeline
  serves it (replayed as SSE for a streamed request; ``answers.replay_stream``) and records it
  with no attempt and cost 0; nothing is reserved for it;
- take over the upstream call (``ex.executor``): a cascade runs its tiers through the
  pipeline's ``UnaryCall`` (every tier priced and kept as an attempt of the one record) and
  asks the admission to reserve the dearer tiers too (``ex.also_reserve``), so a cascade can
  never overshoot a budget;
- ask to see the answer (``ex.keep_answer``): ``on_answer`` gets it in the non-streamed JSON
  shape after the client has it (a streamed one is folded by ``answers.StreamAssembler``);
- price what it saved once the record is final (``on_finish``, before the ledger append), so
  ``record.savings`` is stored with the record in the same line.

Stages own no request state: what they learn about one request lives on its ``Exchange``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from costwarden.records import Attempt, Saving, UsageRecord

# The request body field costwarden's own stages read (RAG passages to trim). A stage takes it
# out; the pipeline refuses a request that still has it rather than send it upstream.
EXTENSION_FIELD = "costwarden"


@dataclass(slots=True)
class Reply:
    """An answer made without an upstream call, in the non-streamed JSON shape."""

    answer: dict[str, Any]
    saving: Saving
    headers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass(slots=True)
class UnaryResult:
    """One non-streamed upstream call made for a stage (a cascade tier)."""

    status: int
    body: bytes
    answer: dict[str, Any] | None  # the parsed JSON body (None if it was not a JSON object)
    attempt: Attempt  # the last try: priced, already on the record


# (model, request body) → the upstream's answer; retries and fallbacks as for any request.
UnaryCall = Callable[[str, dict[str, Any]], Awaitable[UnaryResult]]


@dataclass(slots=True)
class Executed:
    """What an executor answers: the response the client gets."""

    status: int
    body: bytes
    answer: dict[str, Any] | None  # for a streamed request, replayed as SSE when status < 400
    headers: tuple[tuple[bytes, bytes], ...] = ()


class Executor(Protocol):
    """Takes over a request's upstream call (a cascade)."""

    async def execute(self, ex: Exchange, call: UnaryCall) -> Executed: ...


@dataclass(slots=True)
class Exchange:
    """One client request as the savings stages see it."""

    api: str  # "chat.completions" | "completions" | "embeddings" | "messages"
    payload: dict[str, Any]  # the body to send upstream; stages may rewrite it
    model: str  # the model to resolve; stages may change it (router, cascade)
    stream: bool
    record: UsageRecord
    headers: dict[bytes, bytes]  # the client's x-costwarden-* request headers
    executor: Executor | None = None
    also_reserve: tuple[str, ...] = ()  # more models the admission reserves for (cascade)
    keep_answer: bool = False
    answer: dict[str, Any] | None = None  # the successful answer, when keep_answer
    notes: dict[str, Any] = field(default_factory=dict)  # per-stage scratch, by stage name

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else None


class Stage(Protocol):
    name: str

    async def on_request(self, ex: Exchange) -> Reply | None:
        """Rewrite the request, take it over, or answer it (see the module docstring)."""

    def on_finish(self, ex: Exchange) -> None:
        """The record is final (usage, cost, status): add what was saved. No I/O here."""

    async def on_answer(self, ex: Exchange, answer: dict[str, Any]) -> None:
        """The client has its successful answer (only when ``ex.keep_answer`` was set)."""


class BaseStage:
    """No-op hooks, so a stage implements only the ones it needs."""

    name = "stage"
    # The features (``x-costwarden-feature``) whose requests this stage acts on; None: every
    # request. A gateway whose stages all name features gives other requests no Exchange.
    features: frozenset[str] | None = None

    async def on_request(self, ex: Exchange) -> Reply | None:
        return None

    def on_finish(self, ex: Exchange) -> None:
        return None

    async def on_answer(self, ex: Exchange, answer: dict[str, Any]) -> None:
        return None

    async def close(self) -> None:
        return None


class SavingsStages:
    """The configured stages, in order; what the pipeline calls."""

    def __init__(self, stages: Sequence[BaseStage]) -> None:
        self._stages = tuple(stages)
        scopes = [stage.features for stage in self._stages]
        named = [scope for scope in scopes if scope is not None]
        self._features = frozenset[str]().union(*named) if len(named) == len(scopes) else None

    @property
    def active(self) -> bool:
        return bool(self._stages)

    def wants(self, feature: str | None) -> bool:
        """Whether any stage acts on a request tagged with ``feature``."""
        return self._features is None or feature in self._features

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self._stages)

    async def on_request(self, ex: Exchange) -> Reply | None:
        for stage in self._stages:
            reply = await stage.on_request(ex)
            if reply is not None:
                return reply
        return None

    def on_finish(self, ex: Exchange) -> None:
        for stage in self._stages:
            stage.on_finish(ex)

    async def on_answer(self, ex: Exchange) -> None:
        answer = ex.answer
        if answer is None:
            return
        for stage in self._stages:
            await stage.on_answer(ex, answer)

    async def close(self) -> None:
        for stage in self._stages:
            await stage.close()
