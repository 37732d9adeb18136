"""``x-costwarden-priority: batch`` through a real gateway: 202, poll, a worker, the result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from costwarden.batch.context import WorkerOptions
from costwarden.batch.worker import run_worker
from costwarden.providers.fake_upstream import FakeUpstream
from tests.batch.conftest import MODEL, chat_body, worker_settings
from tests.gateway.conftest import StartGateway, start_gateway, upstream

__all__ = ["start_gateway", "upstream"]  # fixtures shared with the gateway tests


async def call(
    method: str, url: str, key: str | None, body: Any = None, **headers: str
) -> tuple[int, dict[str, Any]]:
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_batch_priority_request_is_queued_then_answered(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    settings = worker_settings(tmp_path, f"{upstream.base_url}/v1")
    gw = await start_gateway(settings)
    chat = f"{gw.url}/v1/chat/completions"
    status, queued = await call(
        "POST",
        chat,
        gw.key,
        chat_body(),
        **{"x-costwarden-priority": "batch", "x-costwarden-feature": "digest"},
    )
    assert status == 202
    assert queued["object"] == "costwarden.batch_item" and queued["status"] == "queued"
    poll = gw.url + queued["poll"]
    assert queued["poll"] == f"/v1/costwarden/batch/items/{queued['id']}"
    assert not upstream.requests  # nothing was sent yet

    assert (await call("GET", poll, gw.key))[1]["status"] == "queued"
    other = await gw.new_key("mallory")
    assert (await call("GET", poll, other))[0] == 404  # only the submitting key sees it
    assert (await call("GET", poll, None))[0] == 401

    options = WorkerOptions(exit_when_idle=True, idle_poll_s=0.05)
    assert await run_worker(settings, options) == 0

    status, item = await call("GET", poll, gw.key)
    assert status == 200 and item["status"] == "done"
    response = item["response"]
    assert response["status_code"] == 200
    assert response["body"]["object"] == "chat.completion"
    record = await gw.record(response["request_id"])
    assert record is not None and record.status == "ok"
    assert record.principal.user == "alice" and record.principal.team == "research"
    assert record.tags.feature == "digest"
    assert record.cost is not None and f"{record.cost:f}" == item["cost"]
    assert len(upstream.requests) == 1


async def test_batch_priority_refuses_what_it_cannot_queue(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    gw = await start_gateway(worker_settings(tmp_path, f"{upstream.base_url}/v1"))
    chat = f"{gw.url}/v1/chat/completions"
    low = {"x-costwarden-priority": "low"}
    status, body = await call("POST", chat, gw.key, {**chat_body(), "stream": True}, **low)
    assert status == 400 and body["error"]["param"] == "stream"
    status, body = await call("POST", chat, gw.key, {**chat_body(), "model": "nope"}, **low)
    assert status == 400 and body["error"]["code"] == "model_not_found"
    status, body = await call("POST", chat, "cw-wrong", chat_body(), **low)
    assert status == 401
    status, _ = await call("POST", chat, gw.key, chat_body(), **{"x-costwarden-priority": "high"})
    assert status == 200  # any other value: served now, as usual
    assert MODEL in {r.body["model"] for r in upstream.requests if r.body}
