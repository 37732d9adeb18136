"""The light validation the proxy needs: only the fields policy, routing and pricing read.

Everything else in the body is the upstream's business and passes through untouched; a full
schema check here would cost throughput and reject fields the gateway has never heard of.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from costwarden.errors import InvalidRequest
from costwarden.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES


@dataclass(slots=True, frozen=True)
class RequestInfo:
    model: str
    stream: bool
    max_output_tokens: int | None  # what the client asked for, if anything


# The field each API requires besides ``model``, and the JSON types it may have.
_REQUIRED: dict[str, tuple[str, tuple[type, ...]]] = {
    CHAT: ("messages", (list,)),
    COMPLETIONS: ("prompt", (str, list)),
    EMBEDDINGS: ("input", (str, list)),
    MESSAGES: ("messages", (list,)),
}

_MAX_TOKEN_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


def validate(api: str, body: dict[str, Any]) -> RequestInfo:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a non-empty string", param="model")
    field, types = _REQUIRED[api]
    value = body.get(field)
    if value is None:
        raise InvalidRequest(f"'{field}' is required", param=field)
    if not isinstance(value, types):
        names = " or ".join("array" if t is list else "string" for t in types)
        raise InvalidRequest(f"'{field}' must be {names}", param=field)
    if api in (CHAT, MESSAGES) and not value:
        raise InvalidRequest(f"'{field}' must not be empty", param=field)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
    if stream and api == EMBEDDINGS:
        raise InvalidRequest("embeddings cannot be streamed", param="stream")
    max_tokens = _max_output_tokens(body)
    if api == MESSAGES and max_tokens is None:
        raise InvalidRequest("'max_tokens' is required", param="max_tokens")
    return RequestInfo(model=model, stream=stream, max_output_tokens=max_tokens)


def _max_output_tokens(body: dict[str, Any]) -> int | None:
    for name in _MAX_TOKEN_FIELDS:
        value = body.get(name)
        if value is None:
            continue
        # bool is an int subclass; a JSON true here is a client bug, not a token count.
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidRequest(f"'{name}' must be a positive integer", param=name)
        return value
    return None
