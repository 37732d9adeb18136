"""A real gateway and the fake upstream behind it, on their own event loop in a thread.

Synchronous clients (schemathesis' ``requests`` calls, raw sockets) block the thread they run
in; with the gateway in that same thread's loop they would wait on themselves. Here the test
thread stays free to block, and ``run()`` reaches into the gateway's services (ledger, policy
counters) on the gateway's own loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from costwarden.config import Settings, settings_from_dict
from costwarden.gateway.app import Gateway
from costwarden.gateway.services import Services
from costwarden.keys import hash_key
from costwarden.ledger.store import VirtualKey
from costwarden.providers.fake_upstream import FakeUpstream
from costwarden.records import utcnow
from tests.gateway.conftest import free_port, model

T = TypeVar("T")

ADMIN_KEY = "admin-key-for-hostile-input-tests"
_START_TIMEOUT_S = 30.0


def hardened_settings(tmp_path: Path, upstream_base: str, **extra: Any) -> Settings:
    """The routes under test with every request-path layer switched on: a budget and a rate
    limit (so admission reserves), the exact cache, and the batch intake."""
    models = [
        model("gpt-4o-mini", upstream_base),
        model("text-embedding-3-small", upstream_base),
        model("gpt-3.5-turbo-instruct", upstream_base),
        model(
            "claude-sonnet-4",
            upstream_base,
            endpoint={"provider": "anthropic", "upstream_model": "claude-sonnet-4-20250514"},
        ),
    ]
    data: dict[str, Any] = {
        "gateway": {"key_cache_ttl_s": 0.0, "retry": {"max_attempts": 1}},
        "ledger": {
            "sqlite_path": str(tmp_path / "ledger.db"),
            "spool_dir": str(tmp_path / "spool"),
            "flush_interval_s": 0.02,
        },
        "batch": {"sqlite_path": str(tmp_path / "batch.db")},
        "policy": {
            "budgets": [{"name": "everything", "limit_usd": "1000000", "period": "month"}],
            "rate_limits": [{"scope": {"key": "*"}, "rpm": 1_000_000}],
        },
        "savings": {"exact_cache": {"enabled": True}},
        "models": models,
    }
    data.update(extra)
    return settings_from_dict(data)


class ThreadedGateway:
    def __init__(self, tmp_path: Path, **settings_extra: Any) -> None:
        self._tmp = tmp_path
        self._extra = settings_extra
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: uvicorn.Server | None = None
        self._serving: Future[None] | None = None
        self.upstream = FakeUpstream()
        self.gateway: Gateway | None = None
        self.url = ""
        self.key = ""

    @property
    def services(self) -> Services:
        assert self.gateway is not None and self.gateway.services is not None
        return self.gateway.services

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` on the gateway's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> ThreadedGateway:
        self._thread.start()
        self.run(self.upstream.start("127.0.0.1", 0))
        settings = hardened_settings(self._tmp, f"{self.upstream.base_url}/v1", **self._extra)
        self.gateway = Gateway(settings, environ={settings.gateway.admin_key_env: ADMIN_KEY})
        port = free_port()
        config = uvicorn.Config(
            self.gateway,
            host="127.0.0.1",
            port=port,
            lifespan="on",
            log_level="critical",
            http="httptools",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._serving = asyncio.run_coroutine_threadsafe(self._server.serve(), self._loop)
        self.run(self._until_started(self._server))
        self.url = f"http://127.0.0.1:{port}"
        self.key = self.new_key("alice", "research")
        return self

    async def _until_started(self, server: uvicorn.Server) -> None:
        async with asyncio.timeout(_START_TIMEOUT_S):
            while not server.started:
                assert self._serving is not None
                if self._serving.done():
                    self._serving.result()
                await asyncio.sleep(0.01)

    def new_key(self, user: str, team: str | None = None) -> str:
        created = self.run(self.services.keys.create(user=user, team=team, name=None))
        return str(created.secret)

    def add_key(self, secret: str, user: str) -> str:
        """Store a key whose plaintext the test chose (a schema built at import needs it)."""
        key = VirtualKey(
            key_id="key_" + hash_key(secret)[:16],
            prefix=secret[:8],
            user=user,
            team=None,
            name=None,
            created_at=utcnow(),
        )
        self.run(self.services.ledger.store.create_key(key, hash_key(secret)))
        return key.key_id

    def stop(self) -> None:
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            self._serving.result(_START_TIMEOUT_S)
        self.run(self.upstream.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_START_TIMEOUT_S)
        self._loop.close()
