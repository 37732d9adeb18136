"""OpenAI's Files and Batch APIs, simulated for the fake upstream (tests and demos).

    POST /v1/files                     multipart upload (``purpose``, ``file``) → file object
    GET  /v1/files/{id}                file object
    GET  /v1/files/{id}/content        the file's bytes (input, output or error JSONL)
    POST /v1/batches                   {input_file_id, endpoint, completion_window, metadata}
    GET  /v1/batches/{id}              batch object (``status`` advances with time)
    GET  /v1/batches?limit=N           newest first, OpenAI's list shape
    POST /v1/batches/{id}/cancel       cancelled at once (nothing billed)

A batch is ``validating`` when created, ``in_progress`` once validated, and ``completed`` when
its processing delay has passed (server-wide ``batch_delay_ms``, or per batch
``metadata.x_fake_delay_ms``); the answers are computed then, each input line exactly as the
fake would answer that request (its knobs included: ``"x_fake": {"status": 500}`` in a line's
body makes that line fail). Answers go to the output file, errors to the error file, one line
each in OpenAI's format: ``{"id", "custom_id", "response": {"status_code", "request_id",
"body"}, "error"}``. An input that does not validate (bad JSON, wrong method or url, a
duplicate custom_id) fails the batch with ``errors.data`` naming the line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs

import orjson

from costwarden.providers.base import CHAT, COMPLETIONS, EMBEDDINGS

Answerer = Callable[[str, dict[str, Any]], tuple[int, bytes]]  # (api, body) → status, body
_ENDPOINTS = {
    "/v1/chat/completions": CHAT,
    "/v1/completions": COMPLETIONS,
    "/v1/embeddings": EMBEDDINGS,
}
_JSON = (b"content-type", b"application/json")


@dataclass(slots=True)
class BatchReply:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=lambda: [_JSON])


@dataclass(slots=True)
class _File:
    info: dict[str, Any]
    content: bytes


@dataclass(slots=True)
class _Batch:
    info: dict[str, Any]
    ready_at: float
    lines: list[dict[str, Any]]


def _error(status: int, message: str) -> BatchReply:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    }
    return BatchReply(status, orjson.dumps(body))


def _ok(payload: Mapping[str, Any]) -> BatchReply:
    return BatchReply(200, orjson.dumps(payload))


class FakeBatches:
    """The files and batches of one fake upstream (in memory, like the rest of it)."""

    def __init__(self, answer: Answerer, *, delay_ms: float = 0.0) -> None:
        self._answer = answer
        self._delay_s = delay_ms / 1000
        self._files: dict[str, _File] = {}
        self._batches: dict[str, _Batch] = {}
        self.created = 0  # batches created, for tests that check nothing is paid twice

    def handle(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> BatchReply | None:
        """The reply to a files/batches request; None for any other route."""
        parts = path.rstrip("/").split("/")
        if "files" in parts:
            return self._files_route(method, parts[parts.index("files") + 1 :], headers, body)
        if "batches" in parts:
            return self._batches_route(method, parts[parts.index("batches") + 1 :], query, body)
        return None

    # -- files ---------------------------------------------------------------------------
    def _files_route(
        self, method: str, rest: list[str], headers: Mapping[str, str], body: bytes
    ) -> BatchReply:
        if method == "POST" and not rest:
            return self._upload(headers.get("content-type", ""), body)
        stored = self._files.get(rest[0]) if rest else None
        if method != "GET" or stored is None:
            return _error(404, f"No such File object: {rest[0] if rest else ''}")
        if rest[1:] == ["content"]:
            return BatchReply(200, stored.content, [(b"content-type", b"application/jsonl")])
        return _ok(stored.info)

    def _upload(self, content_type: str, body: bytes) -> BatchReply:
        form = _multipart(content_type, body)
        upload = form.get("file")
        purpose = form.get("purpose")
        if upload is None or purpose is None:
            return _error(400, "an upload needs the 'file' and 'purpose' fields")
        filename, content = upload
        return _ok(self._store(content, filename or "upload.jsonl", purpose[1].decode()))

    def _store(self, content: bytes, filename: str, purpose: str) -> dict[str, Any]:
        file_id = "file-" + os.urandom(12).hex()
        info = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }
        self._files[file_id] = _File(info, content)
        return info

    # -- batches -------------------------------------------------------------------------
    def _batches_route(self, method: str, rest: list[str], query: str, body: bytes) -> BatchReply:
        if method == "POST" and not rest:
            return self._create(body)
        if method == "GET" and not rest:
            return self._list(query)
        batch = self._batches.get(rest[0]) if rest else None
        if batch is None:
            return _error(404, f"No such Batch object: {rest[0] if rest else ''}")
        if method == "POST" and rest[1:] == ["cancel"]:
            return _ok(self._cancel(batch))
        if method == "GET" and len(rest) == 1:
            return _ok(self._advance(batch))
        return _error(404, f"Unknown route {method} batches/{'/'.join(rest)}")

    def _create(self, raw: bytes) -> BatchReply:
        try:
            request = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.")
        endpoint = request.get("endpoint")
        source = self._files.get(str(request.get("input_file_id")))
        if endpoint not in _ENDPOINTS or source is None:
            return _error(400, "a batch needs an uploaded input_file_id and a batch endpoint")
        if request.get("completion_window") != "24h":
            return _error(400, "completion_window must be '24h'")
        metadata = request.get("metadata") or {}
        now = int(time.time())
        batch_id = "batch_" + os.urandom(12).hex()
        info: dict[str, Any] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": endpoint,
            "errors": None,
            "input_file_id": source.info["id"],
            "completion_window": "24h",
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + 86_400,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": metadata,
        }
        delay = float(metadata.get("x_fake_delay_ms", self._delay_s * 1000)) / 1000
        lines, errors = _parse_input(source.content, endpoint)
        if errors:
            info.update(status="failed", failed_at=now, errors={"object": "list", "data": errors})
        else:
            info.update(status="in_progress", in_progress_at=now)
            info["request_counts"]["total"] = len(lines)
        self._batches[batch_id] = _Batch(info, time.monotonic() + delay, lines)
        self.created += 1
        return _ok(info)

    def _list(self, query: str) -> BatchReply:
        limit = int((parse_qs(query).get("limit") or ["20"])[0])
        newest = sorted(self._batches.values(), key=lambda b: -b.info["created_at"])
        data = [self._advance(b) for b in newest[:limit]]
        return _ok(
            {
                "object": "list",
                "data": data,
                "has_more": len(newest) > limit,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    def _cancel(self, batch: _Batch) -> dict[str, Any]:
        if batch.info["status"] in ("validating", "in_progress"):
            now = int(time.time())
            batch.info.update(status="cancelled", cancelling_at=now, cancelled_at=now)
        return batch.info

    def _advance(self, batch: _Batch) -> dict[str, Any]:
        info = batch.info
        if info["status"] == "in_progress" and time.monotonic() >= batch.ready_at:
            self._run(batch)
        return info

    def _run(self, batch: _Batch) -> None:
        api = _ENDPOINTS[batch.info["endpoint"]]
        outputs: list[bytes] = []
        errors: list[bytes] = []
        for line in batch.lines:
            status, body = self._answer(api, dict(line["body"]))
            response = {
                "status_code": status,
                "request_id": "req_" + os.urandom(12).hex(),
                "body": orjson.loads(body),
            }
            out = {
                "id": "batch_req_" + os.urandom(12).hex(),
                "custom_id": line["custom_id"],
                "response": response,
                "error": None,
            }
            (outputs if status < 400 else errors).append(orjson.dumps(out) + b"\n")
        now = int(time.time())
        info = batch.info
        if outputs:
            info["output_file_id"] = self._store(b"".join(outputs), "output.jsonl", "batch_output")[
                "id"
            ]
        if errors:
            info["error_file_id"] = self._store(b"".join(errors), "errors.jsonl", "batch_output")[
                "id"
            ]
        info["request_counts"] = {
            "total": len(batch.lines),
            "completed": len(outputs),
            "failed": len(errors),
        }
        info.update(status="completed", finalizing_at=now, completed_at=now)


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """Form fields of a multipart body: name → (filename, bytes)."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts() if message.is_multipart() else ():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = (part.get_filename(), payload)
    return fields


def _parse_input(
    content: bytes, endpoint: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The input file's requests, or the validation errors that fail the batch."""
    lines: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            errors.append(_line_error("invalid_json_line", "not valid JSON", number))
            continue
        problem = _line_problem(line, endpoint, seen)
        if problem:
            errors.append(_line_error("invalid_request", problem, number))
            continue
        seen.add(line["custom_id"])
        lines.append(line)
    if not lines and not errors:
        errors.append(_line_error("empty_file", "the input file has no requests", None))
    return lines, errors


def _line_problem(line: Any, endpoint: str, seen: set[str]) -> str | None:
    if not isinstance(line, dict) or not isinstance(line.get("body"), dict):
        return "each line needs a 'body' object"
    if line.get("method") != "POST" or line.get("url") != endpoint:
        return f"method must be POST and url {endpoint}"
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str) or custom_id in seen:
        return "custom_id must be a string unique in the file"
    return None


def _line_error(code: str, message: str, line: int | None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": None, "line": line}
