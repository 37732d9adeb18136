"""Small helpers every adapter shares: URL building, auth headers, tolerant token counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from costwarden.config import EndpointConfig
from costwarden.providers.base import ParsedUsage
from costwarden.records import TokenUsage

JSON_CONTENT_TYPE = "application/json"


def upstream_url(endpoint: EndpointConfig, path: str) -> str:
    """``api_base`` + ``path`` + the endpoint's fixed query (e.g. Azure's ``api-version``)."""
    url = endpoint.api_base.rstrip("/") + path
    if endpoint.query_params:
        url += ("&" if "?" in url else "?") + urlencode(endpoint.query_params)
    return url


def auth_header(header_name: str, api_key: str) -> tuple[str, str]:
    """``Authorization`` carries a bearer token; any other header (``api-key``,
    ``x-api-key``) carries the bare key, which is what Azure and Anthropic expect."""
    if header_name.lower() == "authorization":
        return header_name, "Bearer " + api_key
    return header_name, api_key


def request_headers(
    endpoint: EndpointConfig, default_auth_header: str, api_key: str | None
) -> dict[str, str]:
    headers = {"Content-Type": JSON_CONTENT_TYPE, "Accept": JSON_CONTENT_TYPE}
    if api_key is not None:  # self-hosted servers (vLLM, Ollama, llama.cpp) take no key
        name, value = auth_header(endpoint.api_key_header or default_auth_header, api_key)
        headers[name] = value
    return headers


def token_count(value: Any) -> int:
    """A reported token count, or 0 for anything that is not a non-negative integer.

    Upstreams omit fields, send ``null``, or (some self-hosted servers) floats; a malformed
    count must never break billing of the rest of the usage block.
    """
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value >= 0 and value.is_integer():
        return int(value)
    return 0


def sub_dict(payload: dict[str, Any], key: str) -> dict[str, Any]:
    """``payload[key]`` when it is an object, else an empty dict (absent / null / wrong type)."""
    value = payload.get(key)
    return value if isinstance(value, dict) else {}


def parsed_usage(
    payload: dict[str, Any], normalise: Callable[[dict[str, Any]], TokenUsage]
) -> ParsedUsage:
    """Usage and reported model of a non-streamed answer; either may be absent."""
    model = payload.get("model")
    usage = payload.get("usage")
    return ParsedUsage(
        usage=normalise(usage) if isinstance(usage, dict) else None,
        reported_model=model if isinstance(model, str) else None,
    )
