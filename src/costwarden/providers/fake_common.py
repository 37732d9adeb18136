"""What the fake upstream answers, independent of the wire format it answers in.

See ``fake_upstream`` for the documented behaviour; this module holds the rules: per-request
knobs, the deterministic prompt token count, the prompt-cache simulation, model snapshot names
and the generated output.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

# Floating alias → the dated snapshot a real provider reports back. Anything else (dated ids,
# embedding models, self-hosted names) is echoed verbatim.
MODEL_SNAPSHOTS: Mapping[str, str] = MappingProxyType(
    {
        "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
        "gpt-4o": "gpt-4o-2024-08-06",
        "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
        "gpt-4.1": "gpt-4.1-2025-04-14",
        "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
        "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
        "gpt-5": "gpt-5-2025-08-07",
        "gpt-5-mini": "gpt-5-mini-2025-08-07",
        "gpt-5-nano": "gpt-5-nano-2025-08-07",
        "o1": "o1-2024-12-17",
        "o3": "o3-2025-04-16",
        "o3-mini": "o3-mini-2025-01-31",
        "o4-mini": "o4-mini-2025-04-16",
        "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
        "claude-3-7-sonnet-latest": "claude-3-7-sonnet-20250219",
        "claude-sonnet-4-0": "claude-sonnet-4-20250514",
        "claude-opus-4-0": "claude-opus-4-20250514",
        "claude-opus-4-1": "claude-opus-4-1-20250805",
        "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
        "claude-opus-4-5": "claude-opus-4-5-20251101",
        "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    }
)
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
CACHE_PREFIX_TOKENS = 1024  # prompts at least this long have their first 1024 tokens cached
MESSAGE_OVERHEAD_TOKENS = 3  # per message, plus once for the reply priming (as OpenAI counts)
KNOB_HEADER_PREFIX = "x-fake-"
KNOB_BODY_FIELD = "x_fake"
# Each token's logprob when a request asks for logprobs and sets no ``logprob`` knob: a
# confident answer (exp(-0.05) ~ 0.95 per token).
DEFAULT_LOGPROB = -0.05
_OUTPUT_WORDS = (
    "Sure",
    "here",
    "is",
    "a",
    "short",
    "answer",
    "about",
    "the",
    "topic",
    "you",
    "asked",
    "for",
    "with",
    "some",
    "more",
    "detail",
    "on",
    "how",
    "it",
    "works",
    "in",
    "practice",
    "and",
    "why",
    "that",
    "matters",
    "to",
    "your",
    "team",
    "this",
    "week",
    "today",
)


class KnobError(ValueError):
    """A behaviour knob with a value the fake cannot use (answered with a 400)."""


@dataclass(slots=True, frozen=True)
class Knobs:
    status: int | None = None  # answer with this error status
    latency_ms: float = 0.0  # wait before the response starts
    chunk_delay_ms: float = 0.0  # wait between stream events (also: one write per event)
    cut_after: int | None = None  # drop the connection after N content chunks
    no_usage: bool = False  # leave usage out of the response / stream
    output_tokens: int | None = None  # generate this many tokens (still capped by max_tokens)
    cached_tokens: int | None = None  # report this many prompt tokens as cache reads
    reply: str | None = None  # answer with these words (a tier that hedges or refuses)
    logprob: float | None = None  # each token's logprob when the request asks for logprobs
    # Faults (``fake_faults``): a connection reset, a 200 that is not what it claims, a
    # Retry-After on errors, and errors that stop after the first N tries of one request.
    reset: str | None = None  # "headers": RST before any byte; "body": RST mid-body
    malformed: bool = False  # unary: a 200 body that is not JSON; stream: junk events
    retry_after: float | None = None  # Retry-After seconds on an error answer
    flaky: int = 0  # the first N requests carrying ``flaky_id`` fail with ``flaky_status``
    flaky_id: str | None = None
    flaky_status: int = 503

    def merged(self, values: Mapping[str, str]) -> Knobs:
        changes: dict[str, Any] = {}
        for name, raw in values.items():
            parse = _KNOB_PARSERS.get(name.replace("-", "_"))
            if parse is None:
                raise KnobError(f"unknown fake knob {name!r}; known: {sorted(_KNOB_PARSERS)}")
            try:
                changes[name.replace("-", "_")] = parse(raw)
            except ValueError as exc:
                raise KnobError(f"fake knob {name}={raw!r}: {exc}") from exc
        return replace(self, **changes) if changes else self


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _status(raw: str) -> int:
    value = int(raw)
    if not 400 <= value <= 599:
        raise ValueError("must be an HTTP error status (400-599)")
    return value


def _reply(raw: str) -> str:
    if not raw.split():
        raise ValueError("must hold at least one word")
    return raw


def _logprob(raw: str) -> float:
    value = float(raw)
    if not value <= 0:
        raise ValueError("must be <= 0 (a log-probability)")
    return value


def _reset(raw: str) -> str:
    if raw not in {"headers", "body"}:
        raise ValueError("must be 'headers' (before the response) or 'body' (mid-body)")
    return raw


def _flag(raw: str) -> bool:
    return raw.strip().lower() in {"1", "true", "yes", "on"}


_KNOB_PARSERS: Mapping[str, Callable[[str], Any]] = MappingProxyType(
    {
        "status": _status,
        "latency_ms": float,
        "chunk_delay_ms": float,
        "cut_after": _non_negative_int,
        "no_usage": _flag,
        "output_tokens": _non_negative_int,
        "cached_tokens": _non_negative_int,
        "reply": _reply,
        "logprob": _logprob,
        "reset": _reset,
        "malformed": _flag,
        "retry_after": float,
        "flaky": _non_negative_int,
        "flaky_id": str,
        "flaky_status": _status,
    }
)


def split_model(requested: str) -> tuple[str, dict[str, str]]:
    """``"gpt-4o-mini?status=503&latency_ms=20"`` → ``("gpt-4o-mini", {...})``."""
    base, sep, query = requested.partition("?")
    return base, (dict(parse_qsl(query, keep_blank_values=True)) if sep else {})


def body_knobs(body: Mapping[str, Any]) -> dict[str, str]:
    raw = body.get(KNOB_BODY_FIELD)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise KnobError(f"{KNOB_BODY_FIELD} must be an object")
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in raw.items()}


def header_knobs(headers: Mapping[str, str]) -> dict[str, str]:
    cut = len(KNOB_HEADER_PREFIX)
    return {k[cut:]: v for k, v in headers.items() if k.startswith(KNOB_HEADER_PREFIX)}


def response_model(base_model: str) -> str:
    return MODEL_SNAPSHOTS.get(base_model, base_model)


def is_reasoning_model(base_model: str) -> bool:
    return base_model.startswith(REASONING_PREFIXES)


@dataclass(slots=True, frozen=True)
class PromptCount:
    tokens: int
    prefix_key: bytes | None  # set when the prompt is long enough to be cached


def count_prompt(texts: Iterable[str], messages: int) -> PromptCount:
    """Whitespace-separated words of all prompt text, plus 3 per message and 3 for priming
    (no messages: no overhead). Deterministic and cheap; not a real tokenizer."""
    words: list[str] = []
    for text in texts:
        words.extend(text.split())
    overhead = MESSAGE_OVERHEAD_TOKENS * (messages + 1) if messages else 0
    tokens = len(words) + overhead
    key = None
    if tokens >= CACHE_PREFIX_TOKENS:
        prefix = " ".join(words[:CACHE_PREFIX_TOKENS]).encode()
        key = hashlib.blake2b(prefix, digest_size=16).digest()
    return PromptCount(tokens=tokens, prefix_key=key)


class PrefixCache:
    """Which 1024-token prompt prefixes this server has seen (LRU, bounded)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._capacity = capacity

    def seen_before(self, key: bytes) -> bool:
        """True on a repeat; records the key either way."""
        if key in self._seen:
            self._seen.move_to_end(key)
            return True
        self._seen[key] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return False


def content_texts(content: Any) -> Iterable[str]:
    """Text of a message ``content``: a string or a list of typed parts/blocks."""
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    yield text
                yield from content_texts(part.get("content"))  # tool_result blocks nest


@dataclass(slots=True, frozen=True)
class Generation:
    """The output the fake produces for one request."""

    pieces: tuple[str, ...]  # visible text, one piece per token
    reasoning_tokens: int  # hidden tokens, billed as output
    truncated: bool  # stopped by the request's max_tokens

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def output_tokens(self) -> int:
        return len(self.pieces) + self.reasoning_tokens


def generate(
    wanted: int, max_tokens: int | None, reasoning: bool, words: tuple[str, ...] = _OUTPUT_WORDS
) -> Generation:
    """``wanted`` tokens of ``words`` (repeated as needed), capped by ``max_tokens``;
    reasoning models spend half on thinking."""
    total = wanted if max_tokens is None else min(wanted, max_tokens)
    hidden = total // 2 if reasoning else 0
    visible = total - hidden
    pieces = tuple((" " if i else "") + words[i % len(words)] for i in range(visible))
    return Generation(pieces, hidden, max_tokens is not None and max_tokens < wanted)


@dataclass(slots=True, frozen=True)
class Answer:
    """Everything a wire-format builder needs to render one reply."""

    response_id: str
    created: int  # unix seconds
    model: str  # as reported back (dated snapshot for floating aliases)
    prompt_tokens: int  # all prompt tokens, cached ones included
    cache_read_tokens: int
    cache_write_tokens: int
    generation: Generation
    with_usage: bool  # False when the no_usage knob is set
    logprob: float | None = None  # every token's logprob; None: logprobs were not asked for


@dataclass(slots=True, frozen=True)
class StreamPlan:
    """SSE events split so a cut can happen after any content event."""

    head: tuple[bytes, ...]
    content: tuple[bytes, ...]
    tail: tuple[bytes, ...]
