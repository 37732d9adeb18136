"""Spend controls through the real gateway: budgets, rate limits, breakers, pins, environments."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from costwarden.config import Settings, settings_from_dict
from costwarden.providers.fake_upstream import FakeUpstream
from costwarden.records import Status
from tests.gateway.conftest import RunningGateway, StartGateway, base_settings, model
from tests.gateway.test_openai_api import client

ASK = [{"role": "user", "content": "Plan the next step of the agent."}]


def with_policy(
    settings: Settings, policy: dict[str, Any], models: list[Any] | None = None
) -> Settings:
    data = settings.model_dump(mode="json")
    data["policy"] = policy
    if models is not None:
        data["models"] = models
    return settings_from_dict(data)


async def start(
    tmp_path: Path,
    upstream: FakeUpstream,
    start_gateway: StartGateway,
    policy: dict[str, Any],
    extra_models: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> RunningGateway:
    base = f"{upstream.base_url}/v1"
    models = [model("gpt-4o-mini", base), model("gpt-4o", base), *extra_models]
    gw = await start_gateway(with_policy(base_settings(tmp_path, models), policy))
    gw.upstream = upstream
    return gw


async def post_raw(
    gw: RunningGateway,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
    key: str | None = None,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    hdrs = {"authorization": f"Bearer {key or gw.key}", **(headers or {})}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gw.url}/v1/chat/completions", json=body, headers=hdrs) as resp,
    ):
        headers = {k.lower(): v for k, v in resp.headers.items()}
        return resp.status, headers, await resp.json(content_type=None)


async def test_budget_is_never_overshot_under_concurrency(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    cap = Decimal("0.0005")
    gw = await start(
        tmp_path,
        upstream,
        start_gateway,
        {
            "budgets": [
                {
                    "name": "alice-daily",
                    "scope": {"user": "alice"},
                    "period": "day",
                    "limit_usd": str(cap),
                }
            ],
        },
    )
    body = {"model": "gpt-4o", "messages": ASK, "max_tokens": 16}
    results = await asyncio.gather(*(post_raw(gw, body) for _ in range(200)))
    ok = [h["x-request-id"] for status, h, _ in results if status == 200]
    refused = [b for status, _, b in results if status != 200]
    assert ok and refused
    assert {status for status, _, _ in results} == {200, 429}
    error = refused[0]["error"]
    assert error["code"] == "budget_exceeded" and "alice-daily" in error["message"]
    records = [await gw.record(rid) for rid in ok]
    spent = sum((r.cost for r in records), Decimal(0))
    assert spent <= cap
    # Every admitted request is on record, and a refused caller is recorded as rejected.
    assert all(r.status is Status.OK for r in records)


async def test_budget_refusal_says_what_is_left_and_when_it_resets(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await start(
        tmp_path,
        upstream,
        start_gateway,
        {
            "budgets": [
                {
                    "name": "team-monthly",
                    "scope": {"team": "research"},
                    "period": "month",
                    "limit_usd": "0.0001",
                }
            ],
        },
    )
    statuses = []
    for _ in range(10):
        status, headers, body = await post_raw(
            gw, {"model": "gpt-4o", "messages": ASK, "max_tokens": 16}
        )
        statuses.append(status)
        if status != 200:
            break
    assert statuses[-1] == 429
    details = body["error"]["costwarden"]
    assert details["budget"] == "team-monthly"
    assert "remaining_usd" in details and "resets_at" in details
    assert "retry-after" in headers


async def test_rate_limit_admits_exactly_the_limit(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await start(
        tmp_path,
        upstream,
        start_gateway,
        {
            "rate_limits": [{"scope": {"key": "*"}, "rpm": 7}],
        },
    )
    body = {"model": "gpt-4o-mini", "messages": ASK, "max_tokens": 8}
    results = await asyncio.gather(*(post_raw(gw, body) for _ in range(20)))
    ok = [r for r in results if r[0] == 200]
    limited = [r for r in results if r[0] == 429]
    assert len(ok) == 7 and len(limited) == 13
    _, headers, payload = limited[0]
    assert payload["error"]["code"] == "rate_limit_exceeded"
    assert int(headers["retry-after"]) >= 1
    assert "x-ratelimit-limit-requests" in headers
    assert "x-ratelimit-remaining-requests" in ok[0][1]


async def test_runaway_agent_loop_trips_the_breaker_and_spend_stops(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await start(
        tmp_path,
        upstream,
        start_gateway,
        {
            "breakers": {"session": {"loop_repeat_k": 5, "loop_window_s": 60, "max_steps": 50}},
        },
    )
    headers = {"x-costwarden-session": "agent-run-42"}
    body = {"model": "gpt-4o", "messages": ASK, "max_tokens": 16}
    statuses = [(await post_raw(gw, body, headers))[0] for _ in range(30)]
    assert statuses[:4] == [200] * 4  # four identical steps are fine ...
    assert set(statuses[4:]) == {429}  # ... the fifth repeat trips, and it stays open
    _, _, payload = await post_raw(gw, {**body, "messages": ASK + ASK}, headers)
    assert payload["error"]["code"] == "circuit_breaker_open"  # the whole session is stopped
    assert "loop" in payload["error"]["message"].lower()
    # Another session of the same key is unaffected.
    status, _, _ = await post_raw(gw, body, {"x-costwarden-session": "agent-run-43"})
    assert status == 200


async def test_infinite_retry_loop_on_a_failing_call_is_stopped(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await start(
        tmp_path,
        upstream,
        start_gateway,
        {
            "breakers": {"session": {"loop_repeat_k": 4, "loop_window_s": 60}},
        },
    )
    headers = {"x-costwarden-agent": "retrier"}
    body = {"model": "gpt-4o-mini", "messages": ASK, "x_fake": {"status": 400}}
    statuses = [(await post_raw(gw, body, headers))[0] for _ in range(10)]
    assert statuses[:3] == [400, 400, 400]  # upstream's own error, passed through
    assert set(statuses[3:]) == {429}  # then the breaker stops the agent hammering it
    assert len(upstream.requests) == 3


async def test_session_spend_breaker(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await start(
        tmp_path,
        upstream,
        start_gateway,
        {
            "breakers": {"session": {"max_spend_usd": "0.0003"}},
        },
    )
    headers = {"x-costwarden-session": "s-1"}
    spent = Decimal(0)
    for i in range(40):
        body = {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": f"step {i}"}],
            "max_tokens": 16,
        }
        status, hdrs, _ = await post_raw(gw, body, headers)
        if status != 200:
            break
        spent += Decimal(hdrs["x-costwarden-cost"])
    assert status == 429 and spent <= Decimal("0.0003")


async def test_pins_rewrite_reject_and_flag_mismatches(
    tmp_path: Path,
    upstream: FakeUpstream,
    start_gateway: StartGateway,
    caplog: pytest.LogCaptureFixture,
) -> None:
    base = f"{upstream.base_url}/v1"
    pinned = model("gpt-4o-2024-08-06", base)
    gw = await start(
        tmp_path,
        upstream,
        start_gateway,
        {"pins": {"gpt-4o": "gpt-4o-2024-08-06"}, "require_pins": "rewrite"},
        extra_models=[pinned],
    )
    raw = await client(gw).chat.completions.with_raw_response.create(model="gpt-4o", messages=ASK)
    record = await gw.record(raw.headers["x-request-id"])
    assert record.requested_model == "gpt-4o"
    assert record.resolved_model == "gpt-4o-2024-08-06"
    assert upstream.requests[-1].body["model"] == "gpt-4o-2024-08-06"

    strict = await start(
        tmp_path / "strict",
        upstream,
        start_gateway,
        {"pins": {"gpt-4o": "gpt-4o-2024-08-06"}, "require_pins": "reject"},
        extra_models=[pinned],
    )
    with pytest.raises(openai.BadRequestError, match="gpt-4o-2024-08-06"):
        await client(strict).chat.completions.create(model="gpt-4o", messages=ASK)

    # Upstream serves another version than the pin: an event is raised (logged here).
    # The endpoint actually serves gpt-4o-mini: the fake reports gpt-4o-mini-2024-07-18.
    drifting = model("gpt-4o-2024-08-06", base, endpoint={"upstream_model": "gpt-4o-mini"})
    drift = await start(
        tmp_path / "drift",
        upstream,
        start_gateway,
        {"pins": {"gpt-4o": "gpt-4o-2024-08-06"}},
        extra_models=[drifting],
    )
    with caplog.at_level(logging.WARNING):
        await client(drift).chat.completions.create(model="gpt-4o", messages=ASK)
    flagged = [r.getMessage() for r in caplog.records if "PinEvent" in r.getMessage()]
    assert flagged and "gpt-4o-mini-2024-07-18" in flagged[0]


async def test_dev_environment_goes_to_the_local_model(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    base = f"{upstream.base_url}/v1"
    local = model(
        "local-llama",
        base,
        endpoint={"upstream_model": "llama3.2:3b"},
        pricing={
            "mode": "self_hosted",
            "self_hosted": {
                "gpu_hourly_usd": "0.40",
                "throughput_tokens_per_s": 400,
                "utilisation": "0.5",
            },
        },
    )
    gw = await start(
        tmp_path,
        upstream,
        start_gateway,
        {
            "environments": {
                "dev": {
                    "model_map": {"gpt-4o": "local-llama"},
                    "allowed_models": ["local-llama", "gpt-4o-mini"],
                },
            },
        },
        extra_models=[local],
    )
    dev = {"x-costwarden-env": "dev"}
    status, headers, _ = await post_raw(gw, {"model": "gpt-4o", "messages": ASK}, dev)
    assert status == 200
    record = await gw.record(headers["x-request-id"])
    assert record.resolved_model == "local-llama" and record.price_source == "self-hosted"
    assert upstream.requests[-1].body["model"] == "llama3.2:3b"
    # prod is untouched; a model outside dev's list is refused in dev.
    status, headers, _ = await post_raw(
        gw, {"model": "gpt-4o", "messages": ASK}, {"x-costwarden-env": "prod"}
    )
    assert status == 200 and (await gw.record(headers["x-request-id"])).resolved_model == "gpt-4o"
    gw2 = await start(
        tmp_path / "b",
        upstream,
        start_gateway,
        {
            "environments": {"dev": {"allowed_models": ["gpt-4o-mini"]}},
        },
    )
    status, _, payload = await post_raw(gw2, {"model": "gpt-4o", "messages": ASK}, dev)
    assert status == 403 and "dev" in payload["error"]["message"]


async def test_output_is_bounded_when_the_client_gives_no_max_tokens(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await start(
        tmp_path,
        upstream,
        start_gateway,
        {
            "budgets": [{"scope": "global", "limit_usd": "100"}],
            "default_max_output_tokens": 321,
        },
    )
    status, _, _ = await post_raw(gw, {"model": "gpt-4o-mini", "messages": ASK})
    assert status == 200
    assert upstream.requests[-1].body["max_tokens"] == 321
