"""What a refusal must look like on each route: the error body of the route's protocol.

``/v1/messages`` is Anthropic's API, so its refusals are ``{"type": "error", "error": {"type",
"message"}}``; every other route (OpenAI's APIs, the batch poll, the admin API, unknown paths)
answers ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from typing import Any

import orjson

ANTHROPIC_PATHS = frozenset({"/v1/messages"})


def is_anthropic(path: str) -> bool:
    return path.split("?", 1)[0] in ANTHROPIC_PATHS


def assert_refusal_shape(path: str, status: int, body: bytes) -> dict[str, Any]:
    """Assert ``body`` is a useful error body of ``path``'s protocol; return it parsed."""
    assert 400 <= status < 500, f"{path}: status {status} is not a client error: {body[:300]!r}"
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise AssertionError(f"{path}: {status} body is not JSON: {body[:300]!r}") from None
    assert isinstance(data, dict), f"{path}: error body is not an object: {data!r}"
    if is_anthropic(path):
        _assert_anthropic(path, data)
    else:
        _assert_openai(path, data)
    return data


def _assert_openai(path: str, data: dict[str, Any]) -> None:
    assert set(data) == {"error"}, f"{path}: not an OpenAI error body: {data!r}"
    error = data["error"]
    assert isinstance(error, dict), f"{path}: {data!r}"
    assert {"message", "type", "param", "code"} <= set(error), f"{path}: {error!r}"
    _assert_text(path, error["message"], error["type"])
    assert error["param"] is None or isinstance(error["param"], str), f"{path}: {error!r}"
    assert error["code"] is None or isinstance(error["code"], str), f"{path}: {error!r}"


def _assert_anthropic(path: str, data: dict[str, Any]) -> None:
    assert data.get("type") == "error" and set(data) == {"type", "error"}, (
        f"{path}: not an Anthropic error body: {data!r}"
    )
    error = data["error"]
    assert isinstance(error, dict) and set(error) == {"type", "message"}, f"{path}: {data!r}"
    _assert_text(path, error["message"], error["type"])


def _assert_text(path: str, message: Any, kind: Any) -> None:
    assert isinstance(kind, str) and kind, f"{path}: error type {kind!r}"
    # "useful": says what is wrong in words, not just a code
    assert isinstance(message, str) and len(message) >= 10, f"{path}: message {message!r}"
