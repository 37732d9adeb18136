"""``costwarden distill export``: a feature's captured pairs as an OpenAI chat fine-tuning
JSONL file (one ``{"messages": [{"role": …, "content": …}, …]}`` per line, the assistant's
answer last).

Only unexpired pairs are read. Each is redacted again with the feature's redactors as
configured now (rules added since capture apply too), then deduplicated on its normalised
prompt: the newest answer to a prompt wins, so a training set never teaches two answers to
one question. A share of the distinct prompts (chosen by prompt hash: stable from one export to
the next) goes to a validation file. Both files are read back and checked before the summary is
printed: every line parses, every role is one fine-tuning accepts, the last message is the
assistant's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from costwarden.distill.conversation import ROLES, Messages, prompt_hash
from costwarden.distill.redaction import RedactionChain
from costwarden.distill.storage import CapturedPair
from costwarden.pricing import TokenCounter


class InvalidTrainingFile(ValueError):
    """A written line is not a valid fine-tuning example (a bug: raised, never shipped)."""


@dataclass(frozen=True, slots=True)
class Examples:
    """Deduplicated, redacted conversations of one feature, split for training."""

    train: list[Messages]
    validation: list[Messages]
    duplicates: int  # pairs dropped because a newer one had the same prompt


@dataclass(frozen=True, slots=True)
class WrittenFile:
    path: Path
    examples: int
    tokens: int  # as the target's tokenizer counts the conversations (what training bills)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "examples": self.examples, "tokens": self.tokens}


def _clean(messages: Messages) -> Messages:
    # Only what the fine-tuning format reads: a stored pair never carries more, but a
    # redaction hook might add keys.
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def prepare(
    pairs: Iterable[CapturedPair], redact: RedactionChain, validation_share: float
) -> Examples:
    """Redact, deduplicate (newest first in ``pairs`` wins) and split."""
    by_prompt: dict[str, Messages] = {}
    duplicates = 0
    for pair in pairs:
        messages = _clean(redact(pair.messages))
        key = prompt_hash(messages)
        if key in by_prompt:
            duplicates += 1
            continue
        by_prompt[key] = messages
    ordered = sorted(by_prompt)
    held_out = round(len(ordered) * validation_share)
    validation = [by_prompt[k] for k in ordered[:held_out]]
    train = [by_prompt[k] for k in ordered[held_out:]]
    return Examples(train, validation, duplicates)


def check_example(value: Any) -> None:
    """Raise ``InvalidTrainingFile`` unless ``value`` is a chat fine-tuning example."""
    if not isinstance(value, dict) or set(value) != {"messages"}:
        raise InvalidTrainingFile("an example must be an object with only 'messages'")
    messages = value["messages"]
    if not isinstance(messages, list) or len(messages) < 2:
        raise InvalidTrainingFile("'messages' must list at least a user and an assistant turn")
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise InvalidTrainingFile(f"a message's role must be one of {sorted(ROLES)}")
        if not isinstance(message.get("content"), str):
            raise InvalidTrainingFile("a message's content must be text")
    if messages[-1]["role"] != "assistant" or not any(m["role"] == "user" for m in messages):
        raise InvalidTrainingFile("an example needs a user turn and must end with the assistant")


def validate_file(path: Path) -> int:
    """Check every line of a written JSONL file; the number of examples."""
    count = 0
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                check_example(orjson.loads(line))
            except (orjson.JSONDecodeError, InvalidTrainingFile) as exc:
                raise InvalidTrainingFile(f"{path}:{number}: {exc}") from exc
            count += 1
    return count


def write_jsonl(
    path: Path, examples: Sequence[Messages], tokens: TokenCounter, tokenizer_model: str
) -> WrittenFile:
    """Write ``examples`` one per line, read the file back to validate it, count its tokens."""
    total = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        for messages in examples:
            handle.write(orjson.dumps({"messages": messages}) + b"\n")
            total += tokens.estimate_chat(tokenizer_model, messages)
    written = validate_file(path)
    if written != len(examples):
        raise InvalidTrainingFile(f"{path}: {written} examples read back, {len(examples)} written")
    return WrittenFile(path, written, total)


def validation_path(path: Path) -> Path:
    """``train.jsonl`` → ``train.validation.jsonl``, next to it."""
    return path.with_name(f"{path.stem}.validation{path.suffix or '.jsonl'}")
