"""The gateway ASGI application: route table, lifespan, and the small read-only endpoints."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from costwarden.batch.gateway_route import POLL_PREFIX, BatchIntake
from costwarden.batch.in_gateway import GatewayWorkers
from costwarden.config import Settings
from costwarden.dashboard.routes import Dashboard, build_dashboard
from costwarden.errors import CostwardenError, InvalidRequest, MethodNotAllowed, NotFound
from costwarden.gateway.admin import AdminAPI
from costwarden.gateway.asgi import Receive, Scope, Send, send_bytes, send_error, send_json
from costwarden.gateway.metrics_route import MetricsEndpoint
from costwarden.gateway.openapi import PATH as OPENAPI_PATH
from costwarden.gateway.openapi import build_openapi
from costwarden.gateway.pipeline import ProxyPipeline
from costwarden.gateway.services import Services, build_services
from costwarden.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES

log = logging.getLogger("costwarden.gateway")

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]

_PROXY_ROUTES = {
    "/v1/chat/completions": CHAT,
    "/v1/completions": COMPLETIONS,
    "/v1/embeddings": EMBEDDINGS,
    "/v1/messages": MESSAGES,
}


class Gateway:
    """ASGI entry point. Services are built in the lifespan (they need the running loop)."""

    def __init__(
        self,
        settings: Settings,
        services: Services | None = None,
        environ: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.services = services
        self._environ = environ
        self._routes: dict[tuple[str, str], Handler] = {}
        self._admin: AdminAPI | None = None
        self._batch: BatchIntake | None = None
        self._workers: GatewayWorkers | None = None
        self._dashboard: Dashboard | None = None
        self._started = time.time()
        if services is not None:
            self._wire(services)

    def _wire(self, services: Services) -> None:
        self._batch = BatchIntake(services.settings, services.keys)
        pipeline = ProxyPipeline(services, self._batch)
        for path, api in _PROXY_ROUTES.items():
            self._routes[("POST", path)] = _bind(pipeline.handle, api)
        self._routes[("GET", "/v1/models")] = self._models
        self._routes[("GET", "/health")] = self._health
        if services.settings.gateway.openapi:
            self._routes[("GET", OPENAPI_PATH)] = _static_json(build_openapi(services.settings))
        if services.metrics is not None:
            metrics = MetricsEndpoint(services, services.metrics, self._environ)
            self._routes[("GET", "/metrics")] = metrics.handle
        self._admin = AdminAPI(services, self._environ)
        self._dashboard = build_dashboard(services, self._environ)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if "\x00" in path or b"%00" in scope.get("query_string", b""):
            # No route or parameter holds NUL, and PostgreSQL (ledger, batch queue) could not
            # even look one up: refuse it here instead of failing in a query.
            nul = InvalidRequest("the request's path or query string contains a NUL character")
            await send_error(send, nul, anthropic=path == "/v1/messages")
            return
        handler = self._routes.get((scope["method"], path))
        if handler is not None:
            await handler(scope, receive, send)
            return
        if path.startswith(POLL_PREFIX) and self._batch is not None:
            await self._batch.handle_poll(scope, receive, send)
            return
        if path.startswith("/admin/") and self._admin is not None:
            await self._admin.handle(scope, receive, send)
            return
        if self._dashboard is not None and (path == "/dashboard" or path.startswith("/dashboard/")):
            await self._dashboard.handle(scope, receive, send)
            return
        error: CostwardenError
        if any(p == path for _, p in self._routes):
            error = MethodNotAllowed(f"{scope['method']} is not allowed on {path}")
        else:
            error = NotFound(f"no route {scope['method']} {path}")
        await send_error(send, error, anthropic=path == "/v1/messages")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.services is None:
                        self.services = await build_services(self.settings, self._environ)
                        self._wire(self.services)
                    # Batch workers on this process's own counters (batch.gateway_workers).
                    self._workers = GatewayWorkers(self.services, self._environ)
                    await self._workers.start()
                except Exception as exc:
                    log.exception("gateway failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._workers is not None:  # first: they use the services closed below
                    await self._workers.stop()
                if self._batch is not None:
                    await self._batch.close()
                if self.services is not None:
                    await self.services.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _models(self, scope: Scope, receive: Receive, send: Send) -> None:
        created = int(self._started)
        data = [
            {
                "id": m.name,
                "object": "model",
                "created": created,
                "owned_by": m.endpoints[0].provider,
            }
            for m in self.settings.models
        ]
        await send_json(send, 200, {"object": "list", "data": data})

    async def _health(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 200, {"status": "ok", "demo": self.settings.demo})


def _static_json(document: dict[str, Any]) -> Handler:
    """A handler answering the same JSON bytes every time, serialised once here."""
    body = orjson.dumps(document)

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await send_bytes(send, 200, body)

    return handler


def _bind(handle: Callable[[str, Scope, Receive, Send], Awaitable[None]], api: str) -> Handler:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await handle(api, scope, receive, send)

    return handler
