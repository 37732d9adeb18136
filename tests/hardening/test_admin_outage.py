"""The admin API while the ledger database is down: a 503 in the API's error shape, not a 500,
and the answers come back by themselves when the database does (a private PostgreSQL)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import uvicorn

from costwarden.config import settings_from_dict
from costwarden.gateway.app import Gateway
from tests.gateway.conftest import ADMIN_KEY, free_port, model
from tests.support.private_postgres import private_postgres


async def test_admin_answers_503_while_the_ledger_database_is_down(tmp_path: Path) -> None:
    with private_postgres() as postgres:
        settings = settings_from_dict({
            "ledger": {"backend": "postgres", "postgres_dsn": postgres.dsn,
                       "spool_dir": str(tmp_path / "spool")},
            "models": [model("gpt-4o-mini", "http://127.0.0.1:9/v1")],
            "monitor": {"enabled": False},
        })
        port = free_port()
        gateway = Gateway(settings, environ={settings.gateway.admin_key_env: ADMIN_KEY})
        server = uvicorn.Server(uvicorn.Config(gateway, host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="on"))
        serving = asyncio.create_task(server.serve())
        url = f"http://127.0.0.1:{port}/admin/keys"
        try:
            async with aiohttp.ClientSession(
                headers={"authorization": f"Bearer {ADMIN_KEY}"}
            ) as client:
                for _ in range(500):
                    if server.started:
                        break
                    await asyncio.sleep(0.01)
                async with client.get(url) as resp:
                    assert resp.status == 200
                postgres.stop()
                async with client.get(url) as resp:
                    body = await resp.json()
                    assert resp.status == 503, body
                    assert body["error"]["code"] == "ledger_unavailable"
                postgres.start()
                async with client.get(url) as resp:
                    assert resp.status == 200
        finally:
            server.should_exit = True  # while the database is up: shutdown drains quickly
            await serving
