"""JSON Schemas of ``/openapi.json``: request bodies, answers and the two error shapes.

Request schemas constrain what the gateway itself checks (``validation.py``) and describe the
common fields it passes through untouched; every body admits more fields, because upstreams
do. Error bodies are OpenAI's ``{"error": {message, type, param, code}}`` and Anthropic's
``{"type": "error", "error": {type, message}}`` (``errors.py`` renders both).
"""

from __future__ import annotations

from typing import Any

from costwarden.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES

Schema = dict[str, Any]

REF = "#/components/schemas/"


# Fresh dicts from functions, not shared module-level ones: the document is plain data that a
# caller may extend, and no two places in it should alias one object.
def any_object() -> Schema:
    return {"type": "object", "additionalProperties": True}


def _tokens() -> Schema:
    return {"type": "integer", "minimum": 1, "description": "a positive integer"}


def _stream() -> Schema:
    return {"type": "boolean", "default": False}


def _text_or_list() -> Schema:
    return {"type": ["string", "array"]}


def _messages() -> Schema:
    item = {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"type": "string"},
            "content": {"type": ["string", "array", "null"]},
        },
        "additionalProperties": True,
    }
    return {"type": "array", "minItems": 1, "items": item}


def error_responses(error_schema: str, *statuses: int) -> dict[str, Schema]:
    """Error responses of one protocol; ``default`` covers upstream errors passed through."""
    content = {"application/json": {"schema": {"$ref": REF + error_schema}}}
    responses = {str(s): {"description": "refused", "content": content} for s in statuses}
    responses["default"] = {
        "description": "error (also upstream errors passed through)",
        "content": content,
    }
    return responses


def json_response(schema: Schema | str, description: str = "ok") -> Schema:
    body = {"$ref": REF + schema} if isinstance(schema, str) else schema
    return {"description": description, "content": {"application/json": {"schema": body}}}


def _model_field(names: list[str]) -> Schema:
    if not names:  # the route is served, but every model name is refused
        return {"type": "string", "minLength": 1, "description": "no configured model"}
    return {"type": "string", "enum": sorted(names), "examples": sorted(names)[:3]}


def _body(required: list[str], **properties: Schema) -> Schema:
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": True,  # passed through to the upstream untouched
    }


def client_schemas(served: dict[str, list[str]]) -> dict[str, Schema]:
    return {
        "ChatCompletionRequest": _body(
            ["model", "messages"],
            model=_model_field(served[CHAT]),
            messages=_messages(),
            stream=_stream(),
            stream_options=any_object(),
            max_tokens=_tokens(),
            max_completion_tokens=_tokens(),
            temperature={"type": "number"},
            n={"type": "integer"},
            user={"type": "string"},
        ),
        "CompletionRequest": _body(
            ["model", "prompt"],
            model=_model_field(served[COMPLETIONS]),
            prompt=_text_or_list(),
            stream=_stream(),
            max_tokens=_tokens(),
            temperature={"type": "number"},
        ),
        "EmbeddingRequest": _body(
            ["model", "input"],
            model=_model_field(served[EMBEDDINGS]),
            input=_text_or_list(),
            stream={"const": False, "description": "embeddings cannot be streamed"},
            encoding_format={"type": "string"},
            dimensions={"type": "integer"},
        ),
        "MessagesRequest": _body(
            ["model", "messages", "max_tokens"],
            model=_model_field(served[MESSAGES]),
            messages=_messages(),
            max_tokens=_tokens(),
            system=_text_or_list(),
            stream=_stream(),
            temperature={"type": "number"},
        ),
        "OpenAIError": _openai_error(),
        "AnthropicError": _anthropic_error(),
        "BatchItem": {
            "type": "object",
            "required": ["id", "object", "status"],
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "costwarden.batch_item"},
                "status": {"type": "string"},
                "poll": {"type": "string"},
            },
        },
        "ModelList": {
            "type": "object",
            "required": ["object", "data"],
            "properties": {"object": {"const": "list"}, "data": {"type": "array"}},
        },
        "Health": {"type": "object", "required": ["status"]},
        "Object": any_object(),
    }


def _openai_error() -> Schema:
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": {"type": "string", "minLength": 1},
                    "type": {"type": "string", "minLength": 1},
                    "param": {"type": ["string", "null"]},
                    "code": {"type": ["string", "null"]},
                },
            }
        },
    }


def _anthropic_error() -> Schema:
    return {
        "type": "object",
        "required": ["type", "error"],
        "properties": {
            "type": {"const": "error"},
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {
                    "type": {"type": "string", "minLength": 1},
                    "message": {"type": "string", "minLength": 1},
                },
            },
        },
    }
