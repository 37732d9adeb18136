"""Capture through a real gateway in front of the fake upstream (over HTTP), on SQLite and
PostgreSQL: a feature that opted in has its unary and streamed answers (OpenAI and Anthropic)
stored, redacted, after the client got them; another feature, a paused one and untagged
traffic store nothing; with the master switch off nothing at all is stored."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import anthropic
import openai

from costwarden.config import LedgerConfig, Settings, settings_from_dict
from costwarden.distill.storage import open_pair_store
from costwarden.providers.fake_upstream import FakeUpstream
from costwarden.records import utcnow
from tests.distill.support import count_rows, wait_for_pairs
from tests.gateway.conftest import RunningGateway, StartGateway, base_settings, model

QUESTION = "My email is jane@example.com and my card 4111 1111 1111 1111 was charged twice."
REPLY = "Sorry Jane, we will write to jane@example.com within a day."


def _settings(
    tmp_path: Path, upstream: FakeUpstream, ledger: LedgerConfig, **capture: Any
) -> Settings:
    base = f"{upstream.base_url}/v1"
    anthropic_endpoint = {"provider": "anthropic", "upstream_model": "claude-sonnet-4-20250514"}
    models = [model("gpt-4o", base), model("claude-sonnet-4", base, endpoint=anthropic_endpoint)]
    data = base_settings(tmp_path, models).model_dump(mode="json")
    data["ledger"] = ledger.model_dump(mode="json")
    features = {"support": {"retention_days": 7}, "paused": {"enabled": False}}
    data["distill"] = {"capture": {"enabled": True, "features": features, **capture}}
    return settings_from_dict(data)


async def _chat(gw: RunningGateway, feature: str | None, *, stream: bool) -> str:
    """One chat request tagged with ``feature``; its request id."""
    client = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=gw.key, max_retries=0)
    headers = {"x-costwarden-feature": feature} if feature else {}
    arguments: dict[str, Any] = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You answer billing tickets."},
            {"role": "user", "content": QUESTION},
        ],
        "extra_headers": headers,
        "extra_body": {"x_fake": {"reply": REPLY, "output_tokens": 12}},
    }
    if not stream:
        raw = await client.chat.completions.with_raw_response.create(**arguments)
        return str(raw.headers["x-request-id"])
    response = await client.chat.completions.with_raw_response.create(
        **arguments, stream=True, stream_options={"include_usage": True}
    )
    async for _ in response.parse():
        pass
    return str(response.headers["x-request-id"])


async def _anthropic_stream(gw: RunningGateway, feature: str) -> str:
    client = anthropic.AsyncAnthropic(base_url=gw.url, api_key=gw.key, max_retries=0)
    async with client.messages.stream(
        model="claude-sonnet-4",
        max_tokens=64,
        system="You answer billing tickets.",
        messages=[{"role": "user", "content": QUESTION}],
        extra_headers={"x-costwarden-feature": feature},
        extra_body={"x_fake": {"reply": REPLY, "output_tokens": 12}},
    ) as stream:
        await stream.get_final_message()
        return str(stream.response.headers["x-request-id"])


async def test_only_the_opted_in_feature_is_captured_redacted(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway, ledger_config: LedgerConfig
) -> None:
    gw = await start_gateway(_settings(tmp_path, upstream, ledger_config))
    assert "capture" in gw.services.stages.names
    # Only "support" is captured, so only its requests get an Exchange (zero work for others).
    assert gw.services.stages.wants("support")
    assert not gw.services.stages.wants("search") and not gw.services.stages.wants(None)
    captured = {
        await _chat(gw, "support", stream=False),
        await _chat(gw, "support", stream=True),
        await _anthropic_stream(gw, "support"),
    }
    for feature in ("search", "paused", None):
        await _chat(gw, feature, stream=False)
        await _chat(gw, feature, stream=True)
    pairs = await open_pair_store(ledger_config)
    try:
        now = utcnow()
        await wait_for_pairs(pairs, "support", 3, now)
        stored = await pairs.pairs("support", now)
    finally:
        await pairs.close()
    assert await count_rows(ledger_config) == 3  # nothing of search, paused or untagged
    assert {p.request_id for p in stored} == captured
    for pair in stored:
        record = await gw.record(pair.request_id)
        assert pair.model == record.resolved_model
        assert (pair.input_tokens, pair.output_tokens) == (
            record.usage.input_tokens,
            record.usage.output_tokens,
        )
        assert pair.captured_at == record.created_at
        assert pair.expires_at - pair.captured_at == timedelta(days=7)
        assert pair.messages == [
            {"role": "system", "content": "You answer billing tickets."},
            {
                "role": "user",
                "content": "My email is [EMAIL] and my card [CARD] was charged twice.",
            },
            {"role": "assistant", "content": pair.answer},
        ]
        assert "jane@example.com" not in pair.answer and "[EMAIL]" in pair.answer
    assert len({p.prompt_hash for p in stored}) == 1  # same prompt, three APIs / modes


async def test_with_capture_switched_off_nothing_is_stored(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway, ledger_config: LedgerConfig
) -> None:
    gw = await start_gateway(_settings(tmp_path, upstream, ledger_config, enabled=False))
    assert "capture" not in gw.services.stages.names
    ids = [await _chat(gw, "support", stream=stream) for stream in (False, True)]
    ids.append(await _anthropic_stream(gw, "support"))
    for request_id in ids:
        assert (await gw.record(request_id)).tags.feature == "support"
    assert await count_rows(ledger_config) == 0
