"""The cascade stage's request rewrite: tier 0 resolved, every other call reserved for."""

from __future__ import annotations

import math
from typing import Any

import pytest

from costwarden.config import Settings, settings_from_dict
from costwarden.errors import InvalidRequest, UnknownModel
from costwarden.pricing import PriceBook, TokenCounter
from costwarden.providers.base import CHAT, EMBEDDINGS
from costwarden.records import UsageRecord, utcnow
from costwarden.savings.cascade.config import DEFAULT_GRADING_PROMPT
from costwarden.savings.cascade.stage import CascadeExecutor, CascadeStage
from costwarden.savings.services import StageServices
from costwarden.savings.stages import Exchange

TIERS = ["gpt-4o-mini", "gpt-4.1-mini", "gpt-4o"]


def _settings(verifier: bool, grader_price: str | None = "gpt-4o-mini") -> Settings:
    base = "http://127.0.0.1:9/v1"
    models: list[dict[str, Any]] = [{"name": n, "endpoints": [{"api_base": base}]} for n in TIERS]
    grader: dict[str, Any] = {"name": "grader", "endpoints": [{"api_base": base}]}
    if grader_price is not None:
        grader["pricing"] = {"catalog_model": grader_price}
    models.append(grader)
    tiers: list[dict[str, Any]] = [{"model": m, "threshold": 0.5} for m in TIERS[:-1]]
    scorer = {"verifier": {"model": "grader"}} if verifier else {}
    cascade = {"name": "auto", "tiers": [*tiers, {"model": TIERS[-1]}], "scorer": scorer}
    return settings_from_dict({"models": models, "savings": {"cascades": [cascade]}})


def _stage(verifier: bool, grader_price: str | None = "gpt-4o-mini") -> CascadeStage:
    settings = _settings(verifier, grader_price)
    services = StageServices(settings, PriceBook(settings), TokenCounter())
    return CascadeStage(settings.savings.cascades, services)


def _exchange(model: str, api: str = CHAT, **payload: Any) -> Exchange:
    record = UsageRecord("r1", utcnow(), api, model)
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **payload}
    return Exchange(api, body, model, False, record, {})


async def test_a_cascade_request_resolves_tier_0_and_reserves_the_rest() -> None:
    ex = _exchange("auto")
    assert await _stage(verifier=False).on_request(ex) is None
    assert ex.model == "gpt-4o-mini"
    assert ex.also_reserve == ("gpt-4.1-mini", "gpt-4o")
    assert isinstance(ex.executor, CascadeExecutor)


@pytest.mark.parametrize("bound", [16, 4096])
async def test_grading_calls_are_reserved_by_their_worst_case(bound: int) -> None:
    ex = _exchange("auto", max_tokens=bound)
    await _stage(verifier=True).on_request(ex)
    graders = [m for m in ex.also_reserve if m == "grader"]
    instruction = len(DEFAULT_GRADING_PROMPT.encode()) + 8
    per_tier = 2 + math.ceil(instruction / bound)
    assert len(graders) == per_tier * 2  # one grading per tier below the top
    assert per_tier == (3 if bound == 4096 else 2 + math.ceil(instruction / 16))


async def test_other_models_and_apis_are_left_alone_or_refused() -> None:
    stage = _stage(verifier=False)
    plain = _exchange("gpt-4o")
    assert await stage.on_request(plain) is None
    assert plain.executor is None and plain.also_reserve == ()
    with pytest.raises(InvalidRequest, match="cascade"):
        await stage.on_request(_exchange("auto", EMBEDDINGS))


async def test_a_cascade_calling_an_unpriced_model_is_refused() -> None:
    stage = _stage(verifier=True, grader_price=None)
    with pytest.raises(UnknownModel, match="'grader', which has no known price"):
        await stage.on_request(_exchange("auto"))
