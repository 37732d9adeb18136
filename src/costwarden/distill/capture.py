"""The capture stage: a savings-seam stage that asks to see the answers of the features that
opted in, and hands each to the background writer after the client has it.

It never answers, rewrites or delays a request. It declares the features it acts on
(``features``), so with capture as the only stage a request of any other feature does not
even get an ``Exchange``: zero added work. For a captured feature it costs a dict lookup and a
random draw before the call, and a non-blocking queue put after the client has its answer
(a streamed answer is folded back into JSON by ``savings/answers.py`` as it passes, as for
the exact cache). It runs last, so a request a cache answered is not captured: it never
reached a model, and its answer is already on record from the first time.
"""

from __future__ import annotations

import random
from typing import Any

from costwarden.config import Settings
from costwarden.distill.config import CaptureConfig
from costwarden.distill.writer import CaptureWriter, Pending
from costwarden.providers.base import CHAT, MESSAGES
from costwarden.records import Status
from costwarden.savings.stages import BaseStage, Exchange, Reply

_NOTE = "capture"
_APIS = frozenset({CHAT, MESSAGES})


class CaptureStage(BaseStage):
    name = _NOTE

    def __init__(
        self, config: CaptureConfig, writer: CaptureWriter, rng: random.Random | None = None
    ) -> None:
        self._rates = {name: f.sample_rate for name, f in config.active_features().items()}
        self.features = frozenset(self._rates)
        self._writer = writer
        self._random = (rng or random.Random()).random

    @property
    def writer(self) -> CaptureWriter:
        return self._writer

    async def on_request(self, ex: Exchange) -> Reply | None:
        feature = ex.record.tags.feature
        rate = self._rates.get(feature) if feature is not None else None
        if rate is None or ex.api not in _APIS:
            return None
        if rate >= 1.0 or self._random() < rate:
            ex.keep_answer = True
            ex.notes[_NOTE] = feature
        return None

    async def on_answer(self, ex: Exchange, answer: dict[str, Any]) -> None:
        feature = ex.notes.get(_NOTE)
        if feature is None or ex.record.status is not Status.OK:
            return
        self._writer.offer(Pending(feature, ex.api, ex.payload, answer, ex.record))

    async def close(self) -> None:
        await self._writer.close()


def build_capture_stage(settings: Settings) -> CaptureStage | None:
    """The capture stage when some feature's traffic is captured; None otherwise."""
    config = settings.distill.capture
    if not config.active_features():
        return None
    return CaptureStage(config, CaptureWriter(config, settings.ledger))
