"""End to end: a 10x spend spike sent through a real gateway reaches a real webhook receiver as
one anomaly alert, within the watch's interval, and is kept in the ledger's alert log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
import uvicorn

from costwarden.config import Settings
from costwarden.gateway.app import Gateway
from costwarden.gateway.services import Services, build_services
from costwarden.ledger.cube import floor_hour
from costwarden.ledger.rows import row_from_record
from costwarden.monitor.alerts_config import AlertsConfig
from costwarden.monitor.config import MonitorConfig
from costwarden.monitor.jobs import build_monitor
from costwarden.providers.fake_upstream import FakeUpstream
from tests.gateway.conftest import base_settings, free_port, model
from tests.ledger.factory import make_record
from tests.monitor.test_alerts_webhook import Receiver, receiver

__all__ = ["receiver"]  # the real webhook receiver fixture

INTERVAL_S = 1.0
HISTORY_DAYS = 8
USUAL_REQUESTS_PER_HOUR = 3


def monitored(settings: Settings) -> Settings:
    monitor = MonitorConfig.model_validate({
        "tick_s": 0.1,
        "rollup_interval_s": 0.5,
        # Amounts of a test ledger are tiny: the floors come down, the method stays.
        "anomaly": {"interval_s": INTERVAL_S,
                    "detector": {"min_usd": "0.000001", "min_requests": 1000, "min_tokens": 1e9}},
    })
    alerts = AlertsConfig.model_validate({"sinks": [{"type": "webhook", "url_env": "HOOK"}]})
    return settings.model_copy(update={"monitor": monitor, "alerts": alerts})


class Served:
    def __init__(self, url: str, services: Services, key: str) -> None:
        self.url, self.services, self.key = url, services, key


@pytest.fixture
async def served(tmp_path: Path, upstream: FakeUpstream, receiver: Receiver
                 ) -> AsyncIterator[Served]:
    now = datetime.now(UTC)
    if now.minute >= 58:  # keep the whole test inside one real hour
        await asyncio.sleep(3602 - now.minute * 60 - now.second)
    settings = monitored(base_settings(tmp_path, [model("gpt-4o-mini", f"{upstream.base_url}/v1")]))
    env = {"HOOK": receiver.url}
    services = await build_services(settings, env)
    assert services.monitor is not None
    await services.monitor.stop()
    # The watch's clock: half past the real hour, moving in real time, so the projection of the
    # partial hour does not depend on when the test runs (the records are real-time).
    offset = floor_hour(datetime.now(UTC)).timestamp() + 1800 - time.time()
    services.monitor = build_monitor(settings, services.ledger.store, services.alerts,
                                     clock=lambda: time.time() + offset)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(Gateway(settings, services, env), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, 10.0)
    key = (await services.keys.create(user="alice", team="research", name=None)).secret
    yield Served(f"http://127.0.0.1:{port}", services, str(key))
    server.should_exit = True
    await task


async def chat(gw: Served, client: aiohttp.ClientSession) -> Decimal:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}
    async with client.post(f"{gw.url}/v1/chat/completions", json=body,
                           headers={"authorization": f"Bearer {gw.key}"}) as resp:
        assert resp.status == 200, await resp.text()
        return Decimal(resp.headers["x-costwarden-cost"])


async def seed_history(gw: Served, unit: Decimal) -> None:
    """Eight days of USUAL_REQUESTS_PER_HOUR requests' worth of spend every hour."""
    hour = floor_hour(datetime.now(UTC))
    rows = [
        make_record(0, created_at=hour - timedelta(hours=h) + timedelta(minutes=20),
                    user="alice", team="research", cost=unit * USUAL_REQUESTS_PER_HOUR)
        for h in range(1, HISTORY_DAYS * 24 + 1)
    ]
    await gw.services.ledger.store.insert_rows([row_from_record(r) for r in rows])


async def eventually(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.02)


def anomaly_titles(receiver: Receiver) -> list[str]:
    titles = [b["blocks"][0]["text"]["text"] for b in receiver.bodies]
    return [t for t in titles if "anomaly" in t]


async def test_a_10x_spike_through_the_gateway_pages_once(served: Served, receiver: Receiver
                                                          ) -> None:
    async with aiohttp.ClientSession() as client:
        unit = await chat(served, client)  # one request in the first half hour: normal
        await seed_history(served, unit)
        await asyncio.sleep(3 * INTERVAL_S)
        assert anomaly_titles(receiver) == []

        # Half an hour's worth of ten times the usual hour (the watch's clock is at half past).
        for _ in range(10 * USUAL_REQUESTS_PER_HOUR // 2):
            await chat(served, client)
        sent = time.monotonic()
        await eventually(lambda: bool(anomaly_titles(receiver)), 2 * INTERVAL_S + 3)
        [title] = anomaly_titles(receiver)
        assert title.startswith("Spend anomaly: user:alice")
        assert time.monotonic() - sent < 2 * INTERVAL_S + 3

        for _ in range(5):  # the runaway goes on: no second page
            await chat(served, client)
        await asyncio.sleep(4 * INTERVAL_S)
        assert len(anomaly_titles(receiver)) == 1

    store = served.services.ledger.store
    now = datetime.now(UTC)
    logged = await store.list_alerts(now - timedelta(hours=2), now + timedelta(hours=1),
                                     kinds=["anomaly"])
    assert [a.scope for a in logged] == ["user:alice"]
