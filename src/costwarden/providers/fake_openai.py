"""OpenAI-shaped bodies the fake upstream sends: completions, chunks, embeddings, errors.

Stream chunks are assembled from a per-reply byte prefix plus the orjson-encoded piece, so a
content chunk costs one small ``dumps`` instead of a whole dict; the bytes are identical in
shape to OpenAI's (``usage: null`` on every chunk when usage was asked for).
"""

from __future__ import annotations

import base64
import hashlib
import math
from array import array
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson

from costwarden.providers.fake_common import MODEL_SNAPSHOTS, Answer, StreamPlan

FINGERPRINT = "fp_c0stw4rd3n"
_DONE_EVENT = b"data: [DONE]\n\n"
_DEFAULT_DIMENSIONS = 1536
_LARGE_DIMENSIONS = 3072
_ERRORS: Mapping[int, tuple[str, str | None, str]] = MappingProxyType(
    {
        400: ("invalid_request_error", None, "Invalid request (simulated by the fake upstream)."),
        401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
        403: (
            "invalid_request_error",
            "unsupported_country_region_territory",
            "Country, region, or territory not supported.",
        ),
        404: ("invalid_request_error", "model_not_found", "The model does not exist."),
        429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
        500: (
            "server_error",
            None,
            "The server had an error while processing your request. Sorry about that!",
        ),
        503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    }
)


def error_body(status: int, message: str | None = None) -> bytes:
    kind, code, default = _ERRORS.get(
        status,
        (
            "server_error" if status >= 500 else "invalid_request_error",
            None,
            f"Simulated error {status}.",
        ),
    )
    return orjson.dumps(
        {"error": {"message": message or default, "type": kind, "param": None, "code": code}}
    )


def usage_object(answer: Answer) -> dict[str, Any]:
    gen = answer.generation
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": gen.output_tokens,
        "total_tokens": answer.prompt_tokens + gen.output_tokens,
        "prompt_tokens_details": {"cached_tokens": answer.cache_read_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": gen.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _finish_reason(answer: Answer) -> str:
    return "length" if answer.generation.truncated else "stop"


def _token_logprob(piece: str, logprob: float) -> dict[str, Any]:
    entry = {"token": piece, "logprob": logprob, "bytes": list(piece.encode())}
    return {**entry, "top_logprobs": [entry]}


def _logprobs(answer: Answer, pieces: tuple[str, ...]) -> dict[str, Any] | None:
    """OpenAI chat's ``logprobs`` of ``pieces`` (None when they were not asked for)."""
    if answer.logprob is None:
        return None
    return {"content": [_token_logprob(p, answer.logprob) for p in pieces], "refusal": None}


def chat_completion(answer: Answer) -> bytes:
    payload: dict[str, Any] = {
        "id": answer.response_id,
        "object": "chat.completion",
        "created": answer.created,
        "model": answer.model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": answer.generation.text,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": _logprobs(answer, answer.generation.pieces),
                "finish_reason": _finish_reason(answer),
            }
        ],
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    if answer.with_usage:
        payload["usage"] = usage_object(answer)
    return orjson.dumps(payload)


def text_completion(answer: Answer) -> bytes:
    payload: dict[str, Any] = {
        "id": answer.response_id,
        "object": "text_completion",
        "created": answer.created,
        "model": answer.model,
        "choices": [
            {
                "text": answer.generation.text,
                "index": 0,
                "logprobs": None,
                "finish_reason": _finish_reason(answer),
            }
        ],
        "system_fingerprint": FINGERPRINT,
    }
    if answer.with_usage:
        payload["usage"] = usage_object(answer)
    return orjson.dumps(payload)


def _chunk_frame(answer: Answer, obj: str, usage_null: bool) -> tuple[bytes, bytes]:
    """(prefix, suffix) around the ``choices`` list of one chunk."""
    head = orjson.dumps(
        {
            "id": answer.response_id,
            "object": obj,
            "created": answer.created,
            "model": answer.model,
            "system_fingerprint": FINGERPRINT,
        }
    )
    prefix = b"data: " + head[:-1] + b',"choices":'
    suffix = (b',"usage":null' if usage_null else b"") + b"}\n\n"
    return prefix, suffix


def chat_stream(answer: Answer, include_usage: bool) -> StreamPlan:
    usage_chunks = include_usage and answer.with_usage
    prefix, suffix = _chunk_frame(answer, "chat.completion.chunk", usage_chunks)

    def chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return prefix + orjson.dumps([choice]) + suffix

    head = (chunk({"role": "assistant", "content": "", "refusal": None}),)
    content = tuple(
        chunk({"content": piece}, logprobs=_logprobs(answer, (piece,)))
        for piece in answer.generation.pieces
    )
    tail = [chunk({}, _finish_reason(answer))]
    if usage_chunks:
        tail.append(prefix + b'[],"usage":' + orjson.dumps(usage_object(answer)) + b"}\n\n")
    tail.append(_DONE_EVENT)
    return StreamPlan(head, content, tuple(tail))


def completion_stream(answer: Answer, include_usage: bool) -> StreamPlan:
    usage_chunks = include_usage and answer.with_usage
    prefix, suffix = _chunk_frame(answer, "text_completion", usage_chunks)

    def chunk(text: str, finish: str | None = None) -> bytes:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
        return prefix + orjson.dumps([choice]) + suffix

    content = tuple(chunk(piece) for piece in answer.generation.pieces)
    tail = [chunk("", _finish_reason(answer))]
    if usage_chunks:
        tail.append(prefix + b'[],"usage":' + orjson.dumps(usage_object(answer)) + b"}\n\n")
    tail.append(_DONE_EVENT)
    return StreamPlan((), content, tuple(tail))


def embedding_inputs(raw: Any) -> list[str | list[int]] | None:
    """The ``input`` forms OpenAI accepts; None when it is none of them."""
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw:
        if all(isinstance(x, int) for x in raw):
            return [raw]
        if all(isinstance(x, str) for x in raw):
            return list(raw)
        if all(isinstance(x, list) and all(isinstance(t, int) for t in x) for x in raw):
            return list(raw)
    return None


def embedding_tokens(item: str | list[int]) -> int:
    return max(1, len(item.split())) if isinstance(item, str) else len(item)


def embedding_dimensions(model: str, requested: Any) -> int:
    if isinstance(requested, int) and requested > 0:
        return requested
    return _LARGE_DIMENSIONS if "large" in model else _DEFAULT_DIMENSIONS


def vector(item: str | list[int], dimensions: int) -> list[float]:
    """A unit vector derived from a hash of the input: same input, same vector."""
    seed = item.encode() if isinstance(item, str) else orjson.dumps(item)
    raw = bytearray()
    block = 0
    while len(raw) < dimensions:
        raw += hashlib.blake2b(seed, digest_size=64, salt=block.to_bytes(16, "little")).digest()
        block += 1
    values = [(b - 127.5) / 127.5 for b in raw[:dimensions]]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def embeddings(
    model: str, body: Mapping[str, Any], inputs: list[str | list[int]], with_usage: bool
) -> bytes:
    dims = embedding_dimensions(model, body.get("dimensions"))
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        vec = vector(item, dims)
        encoded: Any = base64.b64encode(array("f", vec).tobytes()).decode() if as_base64 else vec
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    payload: dict[str, Any] = {"object": "list", "data": data, "model": model}
    if with_usage:
        tokens = sum(embedding_tokens(item) for item in inputs)
        payload["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return orjson.dumps(payload)


def models_list(created: int) -> bytes:
    ids = sorted(
        {
            *MODEL_SNAPSHOTS,
            *MODEL_SNAPSHOTS.values(),
            "text-embedding-3-small",
            "text-embedding-3-large",
        }
    )
    return orjson.dumps(
        {
            "object": "list",
            "data": [
                {"id": i, "object": "model", "created": created, "owned_by": "costwarden-fake"}
                for i in ids
            ],
        }
    )
