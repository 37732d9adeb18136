"""A small client for OpenAI's Files and Batch APIs (and servers that copy them).

    file_id = await client.upload(jsonl_bytes)                  POST /files (purpose=batch)
    batch = await client.create(file_id, "/v1/chat/completions", metadata)   POST /batches
    batch = await client.retrieve(batch["id"])                  GET /batches/{id}
    lines = await client.content(batch["output_file_id"])       GET /files/{id}/content

The input file holds one request per line: ``{"custom_id", "method": "POST", "url",
"body"}``; output and error files one result per line: ``{"id", "custom_id", "response":
{"status_code", "request_id", "body"}, "error"}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson

from costwarden.config import EndpointConfig
from costwarden.providers.base import CHAT, COMPLETIONS, EMBEDDINGS
from costwarden.providers.wire import auth_header, upstream_url

BATCH_URLS = {
    CHAT: "/v1/chat/completions",
    COMPLETIONS: "/v1/completions",
    EMBEDDINGS: "/v1/embeddings",
}
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
SUBMISSION_KEY = "costwarden_submission"  # metadata that finds a batch again after a crash
_LIST_LIMIT = 100


class BatchApiError(Exception):
    """The provider refused a Files/Batch API call (status and the start of its body)."""


def input_line(custom_id: str, api: str, body: dict[str, Any]) -> bytes:
    line = {"custom_id": custom_id, "method": "POST", "url": BATCH_URLS[api], "body": body}
    return orjson.dumps(line) + b"\n"


def result_lines(content: bytes) -> list[dict[str, Any]]:
    """Decoded output/error file lines (a torn or foreign line is skipped)."""
    lines: list[dict[str, Any]] = []
    for raw in content.splitlines():
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(line, dict) and isinstance(line.get("custom_id"), str):
            lines.append(line)
    return lines


class BatchApiClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: EndpointConfig,
        api_key: str | None,
        timeout_s: float = 300.0,
    ) -> None:
        self._session = session
        self._endpoint = endpoint
        self._headers: dict[str, str] = {}
        if api_key is not None:
            name, value = auth_header(endpoint.api_key_header or "Authorization", api_key)
            self._headers[name] = value
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def upload(self, content: bytes, filename: str) -> str:
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field("file", content, filename=filename, content_type="application/jsonl")
        file_object = await self._json("POST", "/files", data=form)
        return str(file_object["id"])

    async def create(
        self, file_id: str, api: str, metadata: dict[str, str], window: str
    ) -> dict[str, Any]:
        body = {
            "input_file_id": file_id,
            "endpoint": BATCH_URLS[api],
            "completion_window": window,
            "metadata": metadata,
        }
        return await self._json("POST", "/batches", json=body)

    async def retrieve(self, batch_id: str) -> dict[str, Any]:
        return await self._json("GET", f"/batches/{batch_id}")

    async def find(self, submission_id: str) -> dict[str, Any] | None:
        """The newest batches' one carrying this submission's metadata, if any."""
        listing = await self._json("GET", f"/batches?limit={_LIST_LIMIT}")
        batches: Sequence[Any] = listing.get("data") or ()
        for batch in batches:
            metadata = batch.get("metadata") or {}
            if metadata.get(SUBMISSION_KEY) == submission_id:
                return dict(batch)
        return None

    async def content(self, file_id: str) -> bytes:
        url = upstream_url(self._endpoint, f"/files/{file_id}/content")
        async with self._session.get(url, headers=self._headers, timeout=self._timeout) as r:
            data = await r.read()
            if r.status >= 400:
                raise BatchApiError(f"GET files/{file_id}/content: {r.status} {data[:300]!r}")
            return data

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = upstream_url(self._endpoint, path)
        async with self._session.request(
            method, url, headers=self._headers, timeout=self._timeout, **kwargs
        ) as response:
            data = await response.read()
            if response.status >= 400:
                raise BatchApiError(f"{method} {path}: {response.status} {data[:300]!r}")
        payload = orjson.loads(data)
        if not isinstance(payload, dict):
            raise BatchApiError(f"{method} {path}: the answer is not a JSON object")
        return payload
