"""The gateway stage of the learned router.

A request for a router's virtual name (``"model": "auto"``) is sent to the router's weak or
strong model: the last user message is embedded on the embedding pool and the artifact's
router scores it (P(strong right) - P(weak right)), both off the event loop (measured on the
MMLU artifact: ~10 ms to embed a short question, 2-5 ms to score it); a score at or above the
threshold picks the strong model. ``ex.model`` and the body's ``model`` are rewritten before
the model is resolved and the budget reserved, so admission, pricing and the ledger all see
the chosen model.

Once the record is final, the decision is recorded as a ``router`` saving: what the same usage
would have cost on the strong model minus what it did cost (0 when the strong model was
chosen; None when either price is unknown). The detail names the choice, score and threshold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from costwarden.errors import ConfigError, InvalidRequest
from costwarden.providers.base import CHAT, MESSAGES
from costwarden.records import Saving
from costwarden.savings.prompt import last_user_text
from costwarden.savings.router.artifact import ArtifactError, RouterArtifact, load_artifact
from costwarden.savings.router.config import RouterConfig
from costwarden.savings.router.tail import tail_text
from costwarden.savings.services import StageServices
from costwarden.savings.stages import BaseStage, Exchange, Reply

KIND = "router"


@dataclass(frozen=True, slots=True)
class Decision:
    router: str
    model: str
    strong: bool
    score: float
    threshold: float

    def describe(self) -> str:
        side = "strong" if self.strong else "weak"
        return (
            f"{self.router} -> {self.model} ({side}; score {self.score:.3f}, "
            f"threshold {self.threshold:.3f})"
        )


@dataclass(frozen=True, slots=True)
class LoadedRouter:
    config: RouterConfig
    artifact: RouterArtifact
    threshold: float


def load_router(config: RouterConfig, embedder: str) -> LoadedRouter:
    """The router's artifact, checked against the gateway's embedder (ConfigError if not)."""
    try:
        artifact = load_artifact(config.artifact)
    except (ArtifactError, OSError, ValueError) as exc:
        raise ConfigError(f"router {config.name!r}: {exc}") from exc
    if artifact.embedder != embedder:
        raise ConfigError(
            f"router {config.name!r}: {config.artifact} was trained on {artifact.embedder} "
            f"embeddings, this gateway embeds with {embedder}"
        )
    threshold = artifact.threshold if config.threshold is None else config.threshold
    return LoadedRouter(config, artifact, threshold)


class RouterStage(BaseStage):
    """Turns a request for a router's name into one for its weak or strong model."""

    name = KIND

    def __init__(self, routers: Sequence[RouterConfig], services: StageServices) -> None:
        self._services = services
        pool = services.embeddings()
        self._pool = pool
        self._routers = {r.name: load_router(r, pool.embedder.name) for r in routers}

    async def on_request(self, ex: Exchange) -> Reply | None:
        loaded = self._routers.get(ex.model)
        if loaded is None:
            return None
        if ex.api not in (CHAT, MESSAGES):
            raise InvalidRequest(
                f"'{ex.model}' is a router: it answers chat completions and messages only",
                param="model",
            )
        text = last_user_text(ex.payload)
        # A long prompt's tail (its question, its answer choices) is embedded too, in the same
        # batch; a short prompt's tail vector is its head vector.
        tail = tail_text(text) if loaded.artifact.router.heads.tail is not None else None
        embedded = await self._pool.embed_async([text] if tail is None else [text, tail])
        vectors, tails = embedded[:1], embedded[-1:]
        # Scoring reads every stored neighbour (~15 MB for MMLU's 9.9k rows): 2-5 ms of
        # memory-bound numpy that releases the GIL, so it too runs off the event loop.
        scores = await asyncio.to_thread(loaded.artifact.router.score, vectors, [text], tails)
        score = float(scores[0])
        strong = score >= loaded.threshold
        config = loaded.config
        chosen = config.strong if strong else config.weak
        ex.notes[KIND] = Decision(config.name, chosen, strong, score, loaded.threshold)
        ex.model = chosen
        ex.payload["model"] = chosen
        return None

    def on_finish(self, ex: Exchange) -> None:
        decision = ex.notes.get(KIND)
        if not isinstance(decision, Decision):
            return
        record = ex.record
        if not record.attempts:
            return  # refused or answered without an upstream call: nothing was spent
        saved = self._saved(decision, ex)
        record.savings.append(Saving(KIND, saved, 0, decision.describe()))

    def _saved(self, decision: Decision, ex: Exchange) -> Decimal | None:
        record = ex.record
        if record.cost is None:
            return None
        if decision.strong:
            return Decimal(0)
        strong = self._routers[decision.router].config.strong
        full = self._services.cost_of(strong, record.usage, record.created_at)
        return full - record.cost if full is not None else None
