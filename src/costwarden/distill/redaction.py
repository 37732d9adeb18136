"""Redaction of captured pairs before they are stored (and again before they are exported).

A redactor takes the conversation's messages (``[{"role": …, "content": "text"}, …]``, the
final assistant answer included) and returns them redacted. Built in: ``email``, ``phone``,
``secret`` (API keys, tokens, passwords in ``key=value`` form) and ``card`` (Luhn-checked card
numbers), each replacing what it finds with a ``[EMAIL]``-style placeholder. Anything else is a
user hook named ``module:function``, imported once when the configuration is read.

Regexes find the common shapes, not every shape: a hook is the place for what only the
application knows (customer ids, names from its own database).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from costwarden.distill.config import BUILTIN_REDACTORS
from costwarden.errors import ConfigError

Messages = list[dict[str, Any]]
Redactor = Callable[[Messages], Messages]

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
# Provider keys and tokens by their known prefixes, bearer tokens, and the value of anything
# labelled as a secret; the label is kept so the example still reads naturally.
_SECRET_TOKENS = re.compile(
    r"\b(?:sk|pk|rk|cw)-[A-Za-z0-9_-]{16,}"
    r"|\bsk-ant-[A-Za-z0-9_-]{16,}"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"
    r"|\bAIza[0-9A-Za-z_-]{35}"
    r"|\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWT
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{12,}")
_LABELLED = re.compile(
    r"(?i)\b((?:api[_-]?key|secret|token|password|passwd|pwd|access[_-]?key)"
    r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]{4,}"
)
# 13 to 19 digits, optionally grouped by spaces or dashes; confirmed by the Luhn check.
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
# An optional +country code, an optional (area), then at least 7 digits in 2-3 groups. Dates
# (2024-01-15) and plain numbers do not match: they lack the separators' shape.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?"
    r"\d{2,4}[ .-]\d{3,4}(?:[ .-]\d{2,4})?(?!\w)"
)
_MIN_PHONE_DIGITS = 7


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[CARD]" if _luhn_ok(digits) else match.group(0)


def _phone(match: re.Match[str]) -> str:
    digits = sum(c.isdigit() for c in match.group(0))
    return "[PHONE]" if digits >= _MIN_PHONE_DIGITS else match.group(0)


def redact_email(text: str) -> str:
    return _EMAIL.sub("[EMAIL]", text)


def redact_secret(text: str) -> str:
    text = _SECRET_TOKENS.sub("[SECRET]", text)
    text = _BEARER.sub(r"\1[SECRET]", text)
    return _LABELLED.sub(r"\1[SECRET]", text)


def redact_card(text: str) -> str:
    return _CARD.sub(_card, text)


def redact_phone(text: str) -> str:
    return _PHONE.sub(_phone, text)


_TEXT_REDACTORS: dict[str, Callable[[str], str]] = {
    "secret": redact_secret,
    "email": redact_email,
    "card": redact_card,
    "phone": redact_phone,
}
assert set(_TEXT_REDACTORS) == set(BUILTIN_REDACTORS)


def _on_contents(redact: Callable[[str], str]) -> Redactor:
    def apply(messages: Messages) -> Messages:
        return [
            {**m, "content": redact(m["content"])} if isinstance(m.get("content"), str) else m
            for m in messages
        ]

    return apply


def load_hook(path: str) -> Redactor:
    """The function ``module:function`` names; a ``ConfigError`` when it cannot be loaded."""
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
        hook = getattr(module, attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"redaction hook {path!r} cannot be loaded: {exc}") from exc
    if not callable(hook):
        raise ConfigError(f"redaction hook {path!r} is not callable")
    redactor: Redactor = hook
    return redactor


class RedactionChain:
    """The redactors of one feature, in the configured order (built once, at start-up)."""

    def __init__(self, names: Sequence[str]) -> None:
        self._steps: tuple[Redactor, ...] = tuple(
            _on_contents(_TEXT_REDACTORS[name]) if name in _TEXT_REDACTORS else load_hook(name)
            for name in names
        )

    def __call__(self, messages: Messages) -> Messages:
        for step in self._steps:
            messages = step(messages)
            if not isinstance(messages, list):
                raise TypeError("a redaction hook must return the list of messages")
        return messages
