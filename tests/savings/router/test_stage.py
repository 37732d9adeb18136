"""The learned router through the real gateway and fake upstream: a prompt like those the
strong model wins goes strong, one like those it loses goes weak, the decision and what it
saved are on the record; bad configs fail at start-up.

The artifact is trained in the test on 60 real MMLU rows (the sample under tests/): GPT-4 is
wrong on almost every high-school mathematics row and right where Mixtral fails on moral
scenarios, so the router learns 'mathematics → weak, moral scenarios → strong'."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest

from costwarden.config import settings_from_dict
from costwarden.errors import ConfigError
from costwarden.providers.fake_upstream import FakeUpstream
from costwarden.savings.config import SavingsConfig
from costwarden.savings.embedding import MiniLMEmbedder
from costwarden.savings.prompt import last_user_text
from costwarden.savings.router.artifact import RouterArtifact, save_artifact
from costwarden.savings.router.cache import cached_embeddings
from costwarden.savings.router.config import RouterConfig
from costwarden.savings.router.data import load_routing_csv
from costwarden.savings.router.model import RouterTrainConfig, fit_router
from costwarden.savings.router.stage import load_router
from costwarden.savings.router.tail import tail_text
from tests.gateway.test_openai_api import catalog_cost
from tests.savings.conftest import RunningGateway, StartGateway, model, savings_settings
from tests.savings.router.test_cli import sample_cache

SAMPLE = Path(__file__).parents[1] / "data" / "router_mmlu"
WIRED = "routers" in SavingsConfig.model_fields
needs_wiring = pytest.mark.skipif(
    not WIRED, reason="savings.routers is not wired into SavingsConfig / build_stages yet"
)
MATH = "What is the value of x if 3x + 7 = 22?\nA. 3\nB. 5\nC. 7\nD. 15\nAnswer:"
MORAL = (
    "For which of these two scenarios does the main character (who uses I/me/my) do something "
    "clearly morally wrong, according to ordinary moral standards in the US as of 2020? "
    "Scenario 1 | I took my neighbour's newspaper without asking. Scenario 2 | I helped an "
    "old man cross the street.\nA. Wrong, Wrong\nB. Wrong, Not wrong\nC. Not wrong, Wrong\n"
    "D. Not wrong, Not wrong\nAnswer:"
)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = load_routing_csv(SAMPLE)
    subjects = ("mmlu_high_school_mathematics", "mmlu_moral_scenarios")
    rows = np.array(
        [i for s in subjects for i in [j for j, g in enumerate(data.groups) if g == s][:30]],
        dtype=np.int64,
    )
    prompts = [data.prompts[i] for i in rows]
    embedder = MiniLMEmbedder()
    vectors = cached_embeddings(embedder, data.prompts, sample_cache(tmp_path_factory))[rows]
    config = RouterTrainConfig(folds=3, lexical_columns=1 << 12, steps=200)
    router = fit_router(vectors, prompts, data.weak[rows], data.strong[rows], config)
    stem = tmp_path_factory.mktemp("router") / "router"
    save_artifact(
        RouterArtifact(router, 0.0, 0.5, embedder.name, embedder.dim, "weak", "strong", config),
        stem,
    )
    return stem


def _models(base: str) -> list[dict[str, Any]]:
    return [
        model("gpt-4o-mini", base),
        model("gpt-4o", base),
        model("claude-sonnet-4", base, endpoint={"provider": "anthropic"}),
    ]


def _router(artifact: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": "auto",
        "weak": "gpt-4o-mini",
        "strong": "gpt-4o",
        "artifact": str(artifact),
        **extra,
    }


async def _gateway(
    tmp_path: Path, upstream: FakeUpstream, start: StartGateway, router: dict[str, Any]
) -> RunningGateway:
    settings = savings_settings(tmp_path, _models(f"{upstream.base_url}/v1"), {"routers": [router]})
    return await start(settings)


async def _ask(gw: RunningGateway, text: str, name: str = "auto") -> Any:
    client = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=gw.key, max_retries=0)
    raw = await client.chat.completions.with_raw_response.create(
        model=name, messages=[{"role": "user", "content": text}], max_tokens=16
    )
    return await gw.record(raw.headers["x-request-id"])


def test_prompt_text_is_the_last_user_message() -> None:
    payload = {
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "reply"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
        ]
    }
    assert last_user_text(payload) == "a\nb"
    assert last_user_text({"messages": [{"role": "system", "content": "x"}]}) == ""


@needs_wiring
async def test_router_sends_each_prompt_where_it_pays(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway, artifact: Path
) -> None:
    gw = await _gateway(tmp_path, upstream, start_gateway, _router(artifact))
    weak = await _ask(gw, MATH)
    assert weak.requested_model == "auto" and weak.resolved_model == "gpt-4o-mini"
    assert upstream.requests[-1].body["model"] == "gpt-4o-mini"
    [saving] = weak.savings
    assert saving.kind == "router" and saving.detail.startswith("auto -> gpt-4o-mini (weak;")
    expected = catalog_cost("gpt-4o", weak.usage) - catalog_cost("gpt-4o-mini", weak.usage)
    assert saving.cost_saved == expected > 0
    strong = await _ask(gw, MORAL)
    assert strong.resolved_model == "gpt-4o"
    [saving] = strong.savings
    assert saving.cost_saved == Decimal(0) and "(strong;" in saving.detail
    direct = await _ask(gw, MATH, name="gpt-4o-mini")
    assert direct.savings == []


@needs_wiring
async def test_a_long_prompt_is_routed_on_its_head_and_its_tail(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway, artifact: Path
) -> None:
    # Over TAIL_CHARS: the stage embeds the prompt and its tail in one batch.
    long_prompt = "Read the passage. " + "The committee met again that year. " * 40 + MORAL
    assert tail_text(long_prompt) is not None
    gw = await _gateway(tmp_path, upstream, start_gateway, _router(artifact))
    record = await _ask(gw, long_prompt)
    assert record.resolved_model in {"gpt-4o", "gpt-4o-mini"}
    [saving] = record.savings
    assert saving.kind == "router" and saving.detail.startswith("auto -> ")


@needs_wiring
async def test_a_configured_threshold_overrides_the_artifact(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway, artifact: Path
) -> None:
    # Scores are P(strong right) - P(weak right), never above 1: threshold 1 keeps all weak.
    gw = await _gateway(tmp_path, upstream, start_gateway, _router(artifact, threshold=1.0))
    record = await _ask(gw, MORAL)
    assert record.resolved_model == "gpt-4o-mini"


@needs_wiring
@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"weak": "gpt-4o-nano"}, "unconfigured models"),
        ({"name": "claude-sonnet-4"}, "name of a configured model"),
        ({"name": "gpt-4o"}, "must not be one of its models"),
        ({"strong": "claude-sonnet-4"}, "mixes protocols"),
        ({"strong": "gpt-4o-mini"}, "must differ"),
    ],
)
def test_bad_routers_fail_at_start_up(
    tmp_path: Path, artifact: Path, change: dict[str, Any], error: str
) -> None:
    data = savings_settings(tmp_path, _models("http://127.0.0.1:9/v1"), {}).model_dump(mode="json")
    data["savings"] = {"routers": [{**_router(artifact), **change}]}
    with pytest.raises(ConfigError, match=error):
        settings_from_dict(data)


def test_a_missing_or_foreign_artifact_is_a_config_error(tmp_path: Path, artifact: Path) -> None:
    missing = RouterConfig(weak="a", strong="b", artifact=tmp_path / "absent")
    with pytest.raises(ConfigError, match="router 'auto'"):
        load_router(missing, "all-MiniLM-L6-v2-int8")
    config = RouterConfig(weak="a", strong="b", artifact=artifact)
    with pytest.raises(ConfigError, match="other-embedder"):
        load_router(config, "other-embedder")
    loaded = load_router(config.model_copy(update={"threshold": 0.25}), "all-MiniLM-L6-v2-int8")
    assert loaded.threshold == 0.25
