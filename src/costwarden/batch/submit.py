"""Batch input and output files.

Input (``costwarden batch submit FILE``): one request per line, either in OpenAI's batch
format ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body": {...}}`` or a
plain request body (its custom_id is then ``request-<line number>``). One job is one model and
one API, like a provider batch: ``--model`` sets the model of every request; without it the
lines must agree. Every line is checked before anything is queued: a bad file queues nothing.

Output (``costwarden batch results JOB -o FILE``): one line per item, in input order, in
OpenAI's batch output format ``{"id", "custom_id", "response": {"status_code", "request_id",
"body"}, "error"}``; ``request_id`` is the item's ledger record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from costwarden.batch.models import ItemStatus, ItemView, NewItem
from costwarden.errors import InvalidRequest
from costwarden.gateway.validation import validate
from costwarden.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES

API_BY_URL = {
    "/v1/chat/completions": CHAT,
    "/v1/completions": COMPLETIONS,
    "/v1/embeddings": EMBEDDINGS,
    "/v1/messages": MESSAGES,
}
_MAX_REPORTED = 10  # errors listed before "and N more"


@dataclass(frozen=True, slots=True)
class ParsedFile:
    model: str
    api: str
    items: list[NewItem]


def parse_lines(lines: Iterable[bytes], model: str | None = None) -> ParsedFile:
    """Check and read a batch input file; ``ValueError`` naming the bad lines otherwise."""
    items: list[NewItem] = []
    errors: list[str] = []
    apis: set[str] = set()
    models: set[str] = set()
    seen: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            custom_id, api, body = _line(raw, number, model)
            if custom_id in seen:
                raise InvalidRequest(f"custom_id {custom_id!r} appears twice")
            validate(api, body)
        except (InvalidRequest, ValueError) as exc:
            errors.append(f"line {number}: {getattr(exc, 'message', exc)}")
            continue
        seen.add(custom_id)
        apis.add(api)
        models.add(body["model"])
        items.append(NewItem(custom_id, body))
    _check_whole(errors, apis, models, items)
    return ParsedFile(models.pop(), apis.pop(), items)


def _line(raw: bytes, number: int, model: str | None) -> tuple[str, str, dict[str, Any]]:
    data = orjson.loads(raw)  # orjson.JSONDecodeError is a ValueError
    if not isinstance(data, dict):
        raise InvalidRequest("a line must be a JSON object")
    if "custom_id" in data and "body" in data:
        api = API_BY_URL.get(str(data.get("url")))
        if api is None or data.get("method", "POST") != "POST":
            raise InvalidRequest(f"url must be one of {', '.join(API_BY_URL)} with method POST")
        custom_id, body = str(data["custom_id"]), data["body"]
    else:
        custom_id, body, api = f"request-{number}", data, _api_of(data)
    if not isinstance(body, dict):
        raise InvalidRequest("'body' must be a JSON object")
    if body.get("stream") is True:
        raise InvalidRequest("batch requests are not streamed; drop 'stream'")
    body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    if model is not None:
        body["model"] = model
    return custom_id, api, body


def _api_of(body: dict[str, Any]) -> str:
    if "messages" in body:  # Anthropic Messages bodies need the batch format's url
        return CHAT
    if "prompt" in body:
        return COMPLETIONS
    if "input" in body:
        return EMBEDDINGS
    raise InvalidRequest("a plain request needs 'messages', 'prompt' or 'input'")


def _check_whole(errors: list[str], apis: set[str], models: set[str], items: list[NewItem]) -> None:
    if not errors and not items:
        errors.append("the file has no requests")
    if len(apis) > 1:
        errors.append(f"one job is one API; the file mixes {sorted(apis)}")
    if len(models) > 1:
        errors.append(f"one job is one model; the file names {sorted(models)} (use --model)")
    if errors:
        more = len(errors) - _MAX_REPORTED
        listed = errors[:_MAX_REPORTED] + ([f"… and {more} more"] if more > 0 else [])
        raise ValueError("the batch file is not valid:\n  " + "\n  ".join(listed))


def output_line(item: ItemView) -> bytes:
    """One item as a line of OpenAI's batch output format."""
    response = None
    if item.status == ItemStatus.DONE and item.result is not None:
        response = {
            "status_code": item.http_status or 200,
            "request_id": item.request_id,
            "body": orjson.loads(item.result),
        }
    error = None
    if item.status != ItemStatus.DONE:
        error = orjson.loads(item.error) if item.error else None
        if item.status == ItemStatus.CANCELLED:
            error = {"code": "batch_cancelled", "message": "not sent: over the failure budget"}
        elif error is None:
            error = {"code": f"batch_{item.status}", "message": f"the item is {item.status}"}
    line = {
        "id": "batch_req_" + item.item_id.removeprefix("bi_"),
        "custom_id": item.custom_id,
        "response": response,
        "error": error,
    }
    return orjson.dumps(line) + b"\n"


def output_lines(items: Iterable[ItemView]) -> Iterator[bytes]:
    return (output_line(item) for item in items)
