"""``GET /openapi.json``: an OpenAPI 3.1 description of the client and admin APIs.

Built once, when the gateway starts, from its settings (the model names each route serves),
and served as the same bytes to every request. It holds no secrets: routes, headers, shapes
and model names — the names ``GET /v1/models`` already lists without a key. A deployment that
keeps even those private sets ``gateway.openapi: false`` (the route then answers 404).

``/v1/messages`` refuses with Anthropic-shaped errors, every other route OpenAI-shaped. The
schemas themselves live in ``openapi_schemas.py``; the admin routes in ``openapi_admin.py``.
"""

from __future__ import annotations

from costwarden import __version__
from costwarden.config import Settings
from costwarden.gateway.openapi_admin import admin_paths, admin_schemas
from costwarden.gateway.openapi_schemas import (
    REF,
    Schema,
    any_object,
    client_schemas,
    error_responses,
    json_response,
)
from costwarden.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES
from costwarden.providers.registry import adapter_for

PATH = "/openapi.json"

# Attribution and control headers, as the pipeline, batch intake and savings stages read them.
_HEADERS: tuple[tuple[str, str], ...] = (
    ("x-costwarden-feature", "feature tag: attribution, budgets, savings stage selection"),
    ("x-costwarden-env", "environment tag: environment rules and model maps"),
    ("x-costwarden-session", "session tag: groups a conversation's requests"),
    ("x-costwarden-agent", "agent tag: which agent of a multi-agent app asked"),
    ("x-costwarden-priority", "batch priority values queue the request (answered 202)"),
    ("x-costwarden-cache", "'on' / 'off': opt a request in or out of the response cache"),
)


def build_openapi(settings: Settings) -> Schema:
    """The whole document (JSON-able); called once per gateway start."""
    served = _served_models(settings)
    paths: dict[str, Schema] = {
        "/v1/chat/completions": _proxy(CHAT, "ChatCompletionRequest", "OpenAIError"),
        "/v1/completions": _proxy(COMPLETIONS, "CompletionRequest", "OpenAIError"),
        "/v1/embeddings": _proxy(EMBEDDINGS, "EmbeddingRequest", "OpenAIError"),
        "/v1/messages": _proxy(MESSAGES, "MessagesRequest", "AnthropicError"),
        "/v1/models": {"get": _public_get("listModels", "ModelList")},
        "/v1/costwarden/batch/items/{item_id}": {"get": _batch_poll()},
        "/health": {"get": _public_get("health", "Health")},
        PATH: {"get": _public_get("openapi", "Object")},
    }
    if settings.metrics.enabled:
        paths["/metrics"] = {"get": _metrics(settings.metrics.require_admin_key)}
    paths.update(admin_paths())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "costwarden gateway",
            "version": __version__,
            "description": (
                "OpenAI- and Anthropic-compatible LLM gateway with budgets and a cost ledger. "
                "Errors on /v1/messages are Anthropic-shaped, on every other route "
                "OpenAI-shaped. The dashboard (/dashboard) is HTML and not described here."
            ),
        },
        "paths": paths,
        "components": {
            "securitySchemes": _security_schemes(),
            "schemas": {**client_schemas(served), **admin_schemas()},
        },
    }


def _served_models(settings: Settings) -> dict[str, list[str]]:
    """Model names a client may ask for on each API: configured models, pin aliases, and the
    virtual names of cascades and routers, each under the protocol of what it leads to."""
    provider_of = {m.name: m.endpoints[0].provider for m in settings.models}
    names = dict(provider_of)
    names.update({alias: provider_of[model] for alias, model in settings.policy.pins.items()})
    names.update({c.name: provider_of[c.models[0]] for c in settings.savings.cascades})
    names.update({r.name: provider_of[r.weak] for r in settings.savings.routers})
    served: dict[str, list[str]] = {api: [] for api in (CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES)}
    for name, provider in names.items():
        for api in adapter_for(provider).apis:
            served[api].append(name)
    return served


def _security_schemes() -> Schema:
    return {
        "virtualKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "a costwarden virtual key (cw-…), from POST /admin/keys",
        },
        "virtualKeyHeader": {
            "type": "apiKey",
            "in": "header",
            "name": "x-api-key",
            "description": "the same virtual key, as Anthropic SDKs send it",
        },
        "adminKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "the admin key (the variable named by gateway.admin_key_env)",
        },
    }


def _proxy(api: str, request_schema: str, error_schema: str) -> Schema:
    answer = {
        "description": "the upstream's answer, passed through (a stream when stream is true)",
        "content": {
            "application/json": {"schema": any_object()},
            "text/event-stream": {"schema": _sse_event()},
        },
    }
    headers = [
        {
            "name": name,
            "in": "header",
            "required": False,
            "description": what,
            "schema": {"type": "string"},
        }
        for name, what in _HEADERS
    ]
    return {
        "post": {
            "operationId": api,
            "security": [{"virtualKey": []}, {"virtualKeyHeader": []}],
            "parameters": headers,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": REF + request_schema}}},
            },
            "responses": {
                "200": answer,
                "202": json_response("BatchItem", "queued for the batch runner"),
                **error_responses(error_schema, 400, 401, 402, 413, 429),
            },
        }
    }


def _sse_event() -> Schema:
    """One server-sent event of a stream (OpenAI's chunks, or Anthropic's typed events)."""
    return {
        "type": "object",
        "required": ["data"],
        "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
    }


def _public_get(operation_id: str, schema: str) -> Schema:
    return {
        "operationId": operation_id,
        "security": [],
        "responses": {"200": json_response(schema), **error_responses("OpenAIError")},
    }


def _batch_poll() -> Schema:
    return {
        "operationId": "pollBatchItem",
        "security": [{"virtualKey": []}, {"virtualKeyHeader": []}],
        "parameters": [
            {"name": "item_id", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "responses": {
            "200": json_response(any_object(), "the item; its answer once done"),
            **error_responses("OpenAIError", 401, 404),
        },
    }


def _metrics(needs_admin_key: bool) -> Schema:
    return {
        "operationId": "metrics",
        "security": [{"adminKey": []}] if needs_admin_key else [],
        "responses": {
            "200": {
                "description": "Prometheus text exposition",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            **error_responses("OpenAIError", 401, 403),
        },
    }
