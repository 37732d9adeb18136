"""The webhook sink against a real aiohttp receiver on 127.0.0.1: delivery, retry, queueing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from costwarden.errors import BudgetExceeded
from costwarden.gateway.services import build_services
from costwarden.monitor.alert_sinks import WebhookSink, build_alerts
from costwarden.monitor.alerts import Alert, AlertRouter
from costwarden.monitor.alerts_config import AlertsConfig
from costwarden.policy.engine import Admission
from costwarden.records import Principal, Tags, UsageRecord, utcnow
from tests.gateway.conftest import base_settings, model
from tests.gateway.test_controls import with_policy


class Receiver:
    """A Slack-like incoming webhook: records bodies, can fail or stall on demand."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0
        self.fail_next: list[int] = []  # statuses to answer before succeeding
        self.delay_s = 0.0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_next:
            return web.Response(status=self.fail_next.pop(0))
        self.bodies.append(await request.json())
        return web.Response(text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    app = web.Application()
    app.router.add_post("/services/T000/B000/s3cr3t-token", recv.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    recv.url = f"http://127.0.0.1:{port}/services/T000/B000/s3cr3t-token"
    yield recv
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def alert(key: str = "budget.threshold:budget:global:month:2026-11:80") -> Alert:
    return Alert(
        "budget.threshold", "warning", "Budget g passed 80%", "Spent $8 of $10.", "s", key,
        {"spent": "$8.00"}, 1.0,
    )  # fmt: skip


def sink_for(recv: Receiver, session: aiohttp.ClientSession, **kw: Any) -> WebhookSink:
    kw.setdefault("retry", (3, 0.01))
    sink = WebhookSink(recv.url, session, **kw)
    sink.start()
    return sink


async def test_delivers_slack_json(receiver: Receiver, session: aiohttp.ClientSession):
    sink = sink_for(receiver, session)
    sink.emit(alert())
    await sink.flush()
    await sink.close()
    assert sink.sent == 1 and len(receiver.bodies) == 1
    body = receiver.bodies[0]
    assert body["text"] == "[warning] Budget g passed 80%: Spent $8 of $10."
    assert body["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Budget g passed 80%"},
    }
    assert {"type": "mrkdwn", "text": "*spent*\n$8.00"} in body["blocks"][2]["fields"]


async def test_retries_after_a_500(receiver: Receiver, session: aiohttp.ClientSession):
    receiver.fail_next = [500]
    sink = sink_for(receiver, session)
    sink.emit(alert())
    await sink.flush()
    await sink.close()
    assert receiver.attempts == 2 and len(receiver.bodies) == 1
    assert sink.sent == 1 and sink.failed == 0


async def test_gives_up_on_4xx_and_never_logs_the_token(
    receiver: Receiver, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
):
    receiver.fail_next = [404, 404]
    sink = sink_for(receiver, session)
    with caplog.at_level(logging.DEBUG, logger="costwarden.alerts"):
        sink.emit(alert())
        await sink.flush()
    await sink.close()
    assert receiver.attempts == 1 and sink.failed == 1
    assert "127.0.0.1" in caplog.text and "s3cr3t" not in caplog.text


async def test_connection_errors_are_retried_then_given_up(session: aiohttp.ClientSession):
    # A port nobody listens on: bind one, note it, close it.
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    sink = WebhookSink(f"http://127.0.0.1:{port}/hook", session, retry=(3, 0.01))
    sink.start()
    sink.emit(alert())
    await sink.flush()
    await sink.close()
    assert sink.failed == 1 and sink.sent == 0


async def test_emit_does_not_wait_for_a_slow_receiver_and_drops_past_the_queue(
    receiver: Receiver, session: aiohttp.ClientSession
):
    receiver.delay_s = 0.3
    sink = sink_for(receiver, session, queue_size=2)
    started = time.perf_counter()
    for i in range(5):
        sink.emit(alert(f"k{i}"))
    elapsed = time.perf_counter() - started
    assert elapsed < 0.05  # five emits while the receiver takes 0.3 s a request
    # The task has not taken anything yet, so the queue (2) holds two and three are dropped.
    assert sink.dropped == 3
    await sink.flush()
    await sink.close()
    assert sink.sent == 2 and len(receiver.bodies) == 2


async def test_router_dedups_before_the_webhook_and_realerts_after_cooldown(
    receiver: Receiver, session: aiohttp.ClientSession
):
    now = [0.0]
    sink = sink_for(receiver, session)
    router = AlertRouter([sink], cooldown_s=10, clock=lambda: now[0])
    router.start()
    for _ in range(3):
        router.emit(alert())
    now[0] = 11.0
    router.emit(alert())
    await sink.flush()
    await router.close()
    assert receiver.attempts == 2
    assert "suppressed repeats" in str(receiver.bodies[1]["blocks"])


async def test_build_alerts_reads_the_url_from_the_environment(
    receiver: Receiver, session: aiohttp.ClientSession
):
    config = AlertsConfig.model_validate({"sinks": [{"type": "webhook", "url_env": "HOOK"}]})
    assert build_alerts(config, session, {}) is None  # variable unset: no sink, alerts off
    router = build_alerts(config, session, {"HOOK": receiver.url})
    assert router is not None
    router.emit(alert())
    await router.close()  # close drains what is queued
    assert len(receiver.bodies) == 1


class Slot:
    admission: Admission | None = None


def ask(n: int) -> tuple[str, dict[str, Any], bytes, UsageRecord, int]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"step {n}"}]}
    record = UsageRecord(
        request_id=f"r{n}",
        created_at=utcnow(),
        api="chat.completions",
        requested_model="gpt-4o-mini",
        principal=Principal(key_id="k-alice", user="alice", team="ml"),
        tags=Tags(),
        resolved_model="gpt-4o-mini",
    )
    return "chat.completions", body, b"{}", record, 1000


async def test_gateway_services_send_budget_events_to_the_webhook(
    receiver: Receiver, tmp_path: Path
):
    # One worst case (~$0.0006) fits under $0.001, the second is refused: "exhausted", once.
    settings = with_policy(
        base_settings(tmp_path, [model("gpt-4o-mini", "http://127.0.0.1:9/v1")]),
        {"budgets": [{"name": "all", "scope": "global", "limit_usd": "0.001"}]},
    )
    alerts = AlertsConfig.model_validate({"sinks": [{"type": "webhook", "url_env": "HOOK"}]})
    settings = settings.model_copy(update={"alerts": alerts})
    services = await build_services(settings, {"HOOK": receiver.url})
    try:
        admitter = services.admitter()
        await admitter.reserve(*ask(1), slot=Slot())
        for n in (2, 3):
            with pytest.raises(BudgetExceeded):
                await admitter.reserve(*ask(n), slot=Slot())
    finally:
        await services.close()  # drains the webhook queue before the session closes
    titles = [b["blocks"][0]["text"]["text"] for b in receiver.bodies]
    assert titles.count("Budget all exhausted") == 1
