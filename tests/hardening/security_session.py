"""A full gateway session for the secret-leak test: every kind of secret, every kind of path.

The gateway runs in this process on uvicorn with its access log on, so one log capture sees
costwarden's, uvicorn's and aiohttp's lines. The session uses: virtual keys created through
the admin API, upstream API keys read from the environment (the fake upstream requires one),
an alert webhook whose URL carries tokens, answered / streamed / cut / refused requests, an
upstream that rejects its key, bad, malformed and revoked keys, wrong admin keys, admin calls,
the dashboard and /metrics. Every secret used is collected in ``Session.secrets``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvicorn
from aiohttp import web

from costwarden.config import Settings, settings_from_dict
from costwarden.gateway.app import Gateway
from costwarden.providers.fake_upstream import FakeUpstream, FakeUpstreamConfig
from tests.gateway.conftest import free_port

DISPLAY_PREFIX = 8  # keys.py shows "cw-" + 5 characters
ADMIN_ENV = "CW_TEST_ADMIN_KEY"


@dataclass
class Session:
    url: str
    admin_key: str
    secrets: set[str] = field(default_factory=set)  # everything that must never leak
    bodies: list[bytes] = field(default_factory=list)  # every response body but key creation
    webhook_calls: int = 0

    async def send(
        self, method: str, path: str, key: str | None, json: Any = None, *, keep: bool = True
    ) -> tuple[int, bytes]:
        headers = {"authorization": f"Bearer {key}"} if key is not None else {}
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.url + path, json=json, headers=headers) as resp,
        ):
            body = await resp.read()
        if keep:
            self.bodies.append(body)
        return resp.status, body


def settings(tmp: Path, upstream: str, wrong_key_env: str) -> Settings:
    base = f"{upstream}/v1"
    return settings_from_dict(
        {
            "gateway": {"admin_key_env": ADMIN_ENV, "key_cache_ttl_s": 0.0},
            "ledger": {
                "sqlite_path": str(tmp / "ledger.db"),
                "spool_dir": str(tmp / "spool"),
                "flush_interval_s": 0.02,
            },
            "models": [
                _model("gpt-4o-mini", base, "CW_TEST_OPENAI_KEY"),
                _model("gpt-4o", base, wrong_key_env),  # upstream answers 401
                _model("claude-sonnet-4", base, "CW_TEST_ANTHROPIC_KEY", "anthropic"),
            ],
            "policy": {  # a small budget: alerts at 50 / 80 / 100 %, then refusals
                "budgets": [{"scope": {"user": "spender"}, "period": "day", "limit_usd": "0.00005"}]
            },
            "alerts": {
                "sinks": [{"type": "webhook", "url_env": "CW_TEST_WEBHOOK", "max_attempts": 1}]
            },
            "metrics": {"require_admin_key": True},
        }
    )


def _model(name: str, base: str, key_env: str, provider: str = "openai") -> dict[str, Any]:
    endpoint: dict[str, Any] = {"id": f"ep-{name}", "api_base": base, "api_key_env": key_env}
    if provider == "anthropic":
        endpoint.update(provider="anthropic", upstream_model="claude-sonnet-4-20250514")
    return {"name": name, "endpoints": [endpoint]}


@asynccontextmanager
async def webhook_receiver() -> AsyncIterator[tuple[str, list[str]]]:
    """A receiver that answers 500 (so the gateway's failure path runs too) and logs nothing:
    a receiver's own access log of its URL is its business, not the gateway's leak."""
    calls: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/hooks/{token}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", calls
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running_session(tmp: Path) -> AsyncIterator[Session]:
    """Start the fake upstream (requiring a key), a webhook receiver and the gateway with
    every secret in its environment; stop them all after."""
    upstream_key, wrong_key = "sk-" + secrets.token_urlsafe(32), "sk-" + secrets.token_urlsafe(32)
    hook_path, hook_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    admin_key = "adm-" + secrets.token_urlsafe(32)
    async with (
        FakeUpstream(FakeUpstreamConfig(api_key=upstream_key)) as fake,
        webhook_receiver() as (hooks, calls),
    ):
        environ = {
            ADMIN_ENV: admin_key,
            "CW_TEST_OPENAI_KEY": upstream_key,
            "CW_TEST_ANTHROPIC_KEY": upstream_key,
            "CW_TEST_WRONG_KEY": wrong_key,
            "CW_TEST_WEBHOOK": f"{hooks}/hooks/{hook_path}?token={hook_token}",
        }
        gateway = Gateway(settings(tmp, fake.base_url, "CW_TEST_WRONG_KEY"), environ=environ)
        async with serving(gateway) as url:
            session = Session(url, admin_key)
            session.secrets |= {upstream_key, wrong_key, hook_path, hook_token, admin_key}
            yield session
        session.webhook_calls = len(calls)


@asynccontextmanager
async def serving(gateway: Gateway) -> AsyncIterator[str]:
    """The gateway on uvicorn, debug logs and access log on; yields its URL."""
    port = free_port()
    config = uvicorn.Config(
        gateway,
        host="127.0.0.1",
        port=port,
        lifespan="on",
        http="httptools",
        log_level="debug",
        access_log=True,
        log_config=None,
    )
    # The fake's uvicorn config (access_log=False) stops uvicorn.access propagating,
    # process-wide: let the gateway's access lines reach the test's capture again.
    access = logging.getLogger("uvicorn.access")
    access.propagate = True
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # re-raises why the gateway could not start
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        access.propagate = False


async def drive(s: Session) -> None:
    """Everything a day at the gateway does, with secrets everywhere."""
    keys = [await _new_key(s, user) for user in ("ana", "ben", "spender")]
    chat = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 20,
    }
    messages = {**chat, "model": "claude-sonnet-4"}
    for key in keys:
        await s.send("POST", "/v1/chat/completions", key, chat)
        await s.send("POST", "/v1/chat/completions", key, {**chat, "stream": True})
        await s.send("POST", "/v1/messages", key, {**messages, "stream": True})
    for _ in range(6):  # the spender crosses 50 / 80 / 100 %: alerts, then 429 refusals
        await s.send("POST", "/v1/chat/completions", keys[2], chat)
    await s.send("POST", "/v1/chat/completions", keys[0], {**chat, "model": "gpt-4o"})
    await s.send(
        "POST",
        "/v1/chat/completions",
        keys[0],
        {**chat, "stream": True, "x_fake": {"cut_after": 2}},
    )
    await s.send("POST", "/v1/chat/completions", keys[0], {**chat, "x_fake": {"status": 503}})
    await s.send("POST", "/v1/chat/completions", keys[0], {"model": "gpt-4o-mini"})  # 400
    await _bad_keys(s, chat)
    await _admin_calls(s, keys)


async def _new_key(s: Session, user: str) -> str:
    status, body = await s.send("POST", "/admin/keys", s.admin_key, {"user": user}, keep=False)
    assert status == 201
    secret = str(orjson.loads(body)["key"])
    s.secrets.add(secret)
    return secret


async def _bad_keys(s: Session, chat: dict[str, Any]) -> None:
    unknown = "cw-" + secrets.token_urlsafe(32)
    foreign = "sk-proj-" + secrets.token_urlsafe(40)  # someone's OpenAI key, sent by mistake
    s.secrets |= {unknown, foreign}
    for key in (unknown, foreign):
        assert (await s.send("POST", "/v1/chat/completions", key, chat))[0] == 401
    revoked = await _new_key(s, "gone")
    _, listed = await s.send("GET", "/admin/keys", s.admin_key)
    key_id = next(k["id"] for k in orjson.loads(listed)["data"] if k["user"] == "gone")
    assert (await s.send("DELETE", f"/admin/keys/{key_id}", s.admin_key))[0] == 200
    assert (await s.send("POST", "/v1/chat/completions", revoked, chat))[0] == 401


async def _admin_calls(s: Session, keys: list[str]) -> None:
    wrong_admin = "adm-" + secrets.token_urlsafe(32)
    s.secrets.add(wrong_admin)
    for path in ("/admin/keys", "/admin/spend?group_by=user,model", "/metrics", "/dashboard"):
        await s.send("GET", path, s.admin_key)
        await s.send("GET", path, wrong_admin)
        await s.send("GET", path, keys[0])  # a virtual key opens none of them
