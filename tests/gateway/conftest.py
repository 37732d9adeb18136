"""A real gateway on a real port, in front of the real fake upstream, for SDK-driven tests."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
import uvicorn

from costwarden.config import Settings, settings_from_dict
from costwarden.gateway.app import Gateway
from costwarden.gateway.services import Services
from costwarden.providers.fake_upstream import FakeUpstream
from tests.support.state_backends import key_prefix

__all__ = ["key_prefix"]

ADMIN_KEY = "admin-secret-for-tests"


@dataclass
class RunningGateway:
    url: str
    gateway: Gateway
    key: str
    server: uvicorn.Server
    upstream: FakeUpstream | None = None

    @property
    def services(self) -> Services:
        assert self.gateway.services is not None
        return self.gateway.services

    async def new_key(self, user: str, team: str | None = None) -> str:
        created = await self.services.keys.create(user=user, team=team, name=None)
        return str(created.secret)

    async def record(self, request_id: str) -> Any:
        await self.services.ledger.flush()
        return await self.services.ledger.store.get_record(request_id)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    await fake.start("127.0.0.1", 0)
    yield fake
    await fake.stop()


def model(name: str, base: str, **extra: Any) -> dict[str, Any]:
    endpoint = {"id": extra.pop("endpoint_id", f"ep-{name}"), "api_base": base}
    endpoint.update(extra.pop("endpoint", {}))
    return {"name": name, "endpoints": [endpoint], **extra}


def base_settings(tmp_path: Path, models: list[dict[str, Any]], **gateway: Any) -> Settings:
    gw: dict[str, Any] = {
        "key_cache_ttl_s": 0.0,
        "retry": {"backoff_base_s": 0.001, "backoff_max_s": 0.01},
    }
    gw.update(gateway)
    return settings_from_dict(
        {
            "gateway": gw,
            "ledger": {
                "sqlite_path": str(tmp_path / "ledger.db"),
                "spool_dir": str(tmp_path / "spool"),
                "flush_interval_s": 0.02,
            },
            "models": models,
        }
    )


class StartGateway(Protocol):
    def __call__(
        self, settings: Settings, environ: dict[str, str] | None = None
    ) -> Awaitable[RunningGateway]: ...


@pytest.fixture
async def start_gateway() -> AsyncIterator[StartGateway]:
    running: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(settings: Settings, environ: dict[str, str] | None = None) -> RunningGateway:
        env = {settings.gateway.admin_key_env: ADMIN_KEY, **(environ or {})}
        gateway = Gateway(settings, environ=env)
        port = free_port()
        config = uvicorn.Config(
            gateway,
            host="127.0.0.1",
            port=port,
            lifespan="on",
            log_level="warning",
            http="httptools",
            access_log=False,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        running.append((server, task))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        gw = RunningGateway(f"http://127.0.0.1:{port}", gateway, "", server)
        gw.key = await gw.new_key("alice", "research")
        return gw

    yield start
    for server, task in running:
        server.should_exit = True
        await task


@pytest.fixture
async def gateway(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> RunningGateway:
    base = f"{upstream.base_url}/v1"
    models = [
        model("gpt-4o-mini", base),
        model("gpt-4o", base),
        model("o3-mini", base),
        model("text-embedding-3-small", base),
        model("gpt-3.5-turbo-instruct", base),
        model(
            "claude-sonnet-4",
            base,
            endpoint={"provider": "anthropic", "upstream_model": "claude-sonnet-4-20250514"},
        ),
    ]
    gw = await start_gateway(base_settings(tmp_path, models))
    gw.upstream = upstream
    return gw
