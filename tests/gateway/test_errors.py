"""Bad input gets a clear 4xx with an OpenAI-shaped body; upstream errors pass through."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import pytest

from costwarden.records import Status
from tests.gateway.conftest import RunningGateway
from tests.gateway.test_openai_api import client


async def post(
    gw: RunningGateway, path: str, data: bytes, key: str | None = "use-fixture"
) -> tuple[int, dict[str, Any]]:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["authorization"] = f"Bearer {gw.key if key == 'use-fixture' else key}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gw.url}{path}", data=data, headers=headers) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        (b"{not json", 400, "malformed_json", None),
        (b"[1, 2]", 400, "malformed_json", None),
        (b"", 400, "malformed_json", None),
        (b'{"messages": []}', 400, "invalid_request", "model"),
        (b'{"model": 5, "messages": []}', 400, "invalid_request", "model"),
        (b'{"model": "gpt-4o-mini", "messages": "hi"}', 400, "invalid_request", "messages"),
        (b'{"model": "gpt-4o-mini", "messages": []}', 400, "invalid_request", "messages"),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role":"user","content":"x"}], '
            b'"stream": "yes"}',
            400,
            "invalid_request",
            "stream",
        ),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role":"user","content":"x"}], '
            b'"max_tokens": -1}',
            400,
            "invalid_request",
            "max_tokens",
        ),
        (
            b'{"model": "gpt-9-ultra", "messages": [{"role":"user","content":"x"}]}',
            400,
            "model_not_found",
            "model",
        ),
        (  # the trimming extension on a gateway without trimming: never sent upstream
            b'{"model": "gpt-4o-mini", "messages": [{"role":"user","content":"x"}], '
            b'"costwarden": {"passages": ["a", "b"]}}',
            400,
            "invalid_request",
            "costwarden",
        ),
    ],
)
async def test_bad_input_is_a_clear_4xx(
    gateway: RunningGateway, body: bytes, status: int, code: str, param: str | None
) -> None:
    got_status, payload = await post(gateway, "/v1/chat/completions", body)
    assert got_status == status
    error = payload["error"]
    assert error["code"] == code and error["param"] == param
    assert error["message"] and error["type"] == "invalid_request_error"


async def test_missing_and_bad_keys_are_401(gateway: RunningGateway) -> None:
    body = b'{"model": "gpt-4o-mini", "messages": [{"role":"user","content":"x"}]}'
    status, payload = await post(gateway, "/v1/chat/completions", body, key=None)
    assert status == 401 and payload["error"]["type"] == "authentication_error"
    status, payload = await post(gateway, "/v1/chat/completions", body, key="cw-not-a-real-key")
    assert status == 401 and payload["error"]["code"] == "invalid_api_key"
    assert "cw-not-a-real-key" not in str(payload)  # never echo secrets


async def test_huge_body_is_413(gateway: RunningGateway) -> None:
    limit = gateway.services.settings.gateway.max_body_bytes
    big = (
        b'{"model": "gpt-4o-mini", "messages": [{"role":"user","content":"' + b"x" * limit + b'"}]}'
    )
    status, payload = await post(gateway, "/v1/chat/completions", big)
    assert status == 413 and payload["error"]["code"] == "payload_too_large"


async def test_unknown_route_and_method(gateway: RunningGateway) -> None:
    status, payload = await post(gateway, "/v1/nothing-here", b"{}")
    assert status == 404 and payload["error"]["type"] == "not_found_error"
    status, _ = await post(gateway, "/v1/models", b"{}")
    assert status == 405


async def test_upstream_client_error_passes_through_unretried(gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client(gateway).chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "x"}],
            extra_body={"x_fake": {"status": 400}},
        )
    request_id = info.value.response.headers["x-request-id"]
    record = await gateway.record(request_id)
    assert record.status is Status.UPSTREAM_ERROR and record.http_status == 400
    assert len(record.attempts) == 1  # a 400 is the caller's fault: retrying cannot help


async def test_upstream_5xx_is_retried_then_passed_through(gateway: RunningGateway) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        await client(gateway).chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "x"}],
            extra_body={"x_fake": {"status": 500}},
        )
    assert info.value.status_code == 500
    record = await gateway.record(info.value.response.headers["x-request-id"])
    max_attempts = gateway.services.settings.gateway.retry.max_attempts
    assert len(record.attempts) == max_attempts
    assert all(a.http_status == 500 for a in record.attempts)
    assert record.cost == 0  # no tokens were generated by any attempt


async def test_rejected_requests_of_known_callers_are_recorded(gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client(gateway).chat.completions.create(
            model="gpt-9-ultra", messages=[{"role": "user", "content": "x"}]
        )
    record = await gateway.record(info.value.response.headers["x-request-id"])
    assert record.status is Status.REJECTED and record.attempts == []
    assert record.error_type == "model_not_found"
