"""Low-priority requests through the gateway: queued for the batch runner, answered later.

A client marks a request ``x-costwarden-priority: batch`` (or ``low``; see
``batch.gateway_priority_values``). The gateway authenticates the key as usual, checks the body
like any request, queues it into the open intake job of that key, model and tags, and answers
``202`` at once::

    {"id": "bi_…", "object": "costwarden.batch_item", "status": "queued",
     "poll": "/v1/costwarden/batch/items/bi_…"}

``GET`` on the poll path (same key only; any other key gets a 404) returns the item: its
status, and once done the answer in OpenAI's batch output shape. Nothing is sent upstream
here, so nothing is spent or recorded yet: each try a worker makes gets its ledger record.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import orjson

from costwarden.batch.backends import BatchQueue, open_queue
from costwarden.batch.models import ItemStatus, JobSpec, NewItem
from costwarden.config import Settings
from costwarden.errors import (
    AuthenticationError,
    CostwardenError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    UnknownModel,
)
from costwarden.gateway.asgi import Receive, Scope, Send, header, send_error, send_json
from costwarden.gateway.validation import RequestInfo
from costwarden.keys import KeyStore
from costwarden.providers.base import CHAT, COMPLETIONS, EMBEDDINGS
from costwarden.records import Principal, Tags

POLL_PREFIX = "/v1/costwarden/batch/items/"
PRIORITY_HEADER = b"x-costwarden-priority"
_BATCH_API_APIS = frozenset({CHAT, COMPLETIONS, EMBEDDINGS})
_SHOWN_STATUS = {ItemStatus.LEASED.value: "in_progress", ItemStatus.SUBMITTED.value: "in_progress"}


class BatchIntake:
    """The gateway's side of the batch queue (opened on first use, closed with the app)."""

    def __init__(self, settings: Settings, keys: KeyStore) -> None:
        self._settings = settings
        self._keys = keys
        self._values = frozenset(v.lower() for v in settings.batch.gateway_priority_values)
        self._queue: BatchQueue | None = None
        self._opening = asyncio.Lock()

    def wants(self, scope: Scope) -> bool:
        value = header(scope, PRIORITY_HEADER)
        return value is not None and value.strip().lower() in self._values

    async def enqueue(
        self,
        api: str,
        scope: Scope,
        send: Send,
        *,
        principal: Principal,
        payload: dict[str, Any],
        info: RequestInfo,
    ) -> None:
        if info.stream:
            raise InvalidRequest("a batch-priority request cannot be streamed", param="stream")
        model = self._settings.model(info.model)
        if model is None:
            raise UnknownModel(f"model '{info.model}' is not configured on this gateway")
        queue = await self._open()
        config = self._settings.batch
        api_mode = config.default_mode == "batch_api" and api in _BATCH_API_APIS
        openai = model.endpoints[0].provider == "openai"
        spec = JobSpec(
            model=info.model,
            api=api,
            mode="batch_api" if api_mode and openai else "direct",
            failure_budget=config.failure_budget,
            max_attempts=config.max_attempts,
            name=f"gateway {principal.user or principal.key_id} {info.model}",
            source="gateway",
            principal=principal,
            tags=Tags(
                feature=header(scope, b"x-costwarden-feature"),
                env=header(scope, b"x-costwarden-env"),
            ),
        )
        job = await queue.jobs.intake(spec)
        ids = await queue.jobs.add_items(job.job_id, [NewItem(_custom_id(), payload)])
        poll = POLL_PREFIX + ids[0]
        body = {"id": ids[0], "object": "costwarden.batch_item", "status": "queued", "poll": poll}
        await send_json(send, 202, body, ((b"location", poll.encode()),))

    async def handle_poll(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /v1/costwarden/batch/items/{id}``, authenticated like any request."""
        try:
            if scope["method"] != "GET":
                raise MethodNotAllowed(f"{scope['method']} is not allowed on {scope['path']}")
            await self._poll(scope, send, await self._principal(scope))
        except CostwardenError as exc:
            await send_error(send, exc)

    async def _principal(self, scope: Scope) -> Principal:
        authorization = header(scope, b"authorization") or ""
        key = authorization[7:].strip() if authorization[:7].lower() == "bearer " else None
        key = key or header(scope, b"x-api-key")
        principal = await self._keys.authenticate(key) if key else None
        if principal is None:
            raise AuthenticationError("missing, invalid or revoked API key")
        return principal

    async def _poll(self, scope: Scope, send: Send, principal: Principal) -> None:
        item_id = scope["path"][len(POLL_PREFIX) :]
        queue = await self._open()
        item = await queue.jobs.item(item_id)
        job = await queue.jobs.get(item.job_id) if item is not None else None
        owner = job.principal.key_id if job is not None and job.principal else None
        if item is None or owner != principal.key_id:
            raise NotFound(f"no batch item {item_id} for this key")
        out: dict[str, Any] = {
            "id": item.item_id,
            "object": "costwarden.batch_item",
            "status": _SHOWN_STATUS.get(item.status, item.status),
            "attempts": item.attempts,
            "response": None,
            "error": orjson.loads(item.error) if item.error and item.status != "done" else None,
        }
        if item.status == ItemStatus.DONE and item.result is not None:
            out["response"] = {
                "status_code": item.http_status,
                "request_id": item.request_id,
                "body": orjson.loads(item.result),
            }
            out["cost"] = None if item.cost is None else f"{item.cost:f}"
        await send_json(send, 200, out)

    async def _open(self) -> BatchQueue:
        async with self._opening:
            if self._queue is None:
                self._queue = await open_queue(self._settings)
            return self._queue

    async def close(self) -> None:
        if self._queue is not None:
            await self._queue.close()
            self._queue = None


def _custom_id() -> str:
    return "gw-" + os.urandom(8).hex()
