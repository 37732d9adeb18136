"""Redaction: the built-in redactors find emails, phone numbers, secrets and card numbers and
leave ordinary text (dates, amounts, ids) alone; user hooks load by dotted path and run in
order; a hook that cannot be loaded is a configuration error at start-up."""

from __future__ import annotations

from typing import Any

import pytest

from costwarden.distill.config import FeatureCapture
from costwarden.distill.redaction import (
    RedactionChain,
    redact_card,
    redact_email,
    redact_phone,
    redact_secret,
)
from costwarden.errors import ConfigError


def shout_hook(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A user hook for the tests: drops the system prompt and upper-cases the rest."""
    return [{**m, "content": m["content"].upper()} for m in messages if m["role"] != "system"]


def test_emails_are_replaced() -> None:
    text = "Write to jane.doe+billing@mail.example.co.uk or ops@example.com today."
    assert redact_email(text) == "Write to [EMAIL] or [EMAIL] today."


@pytest.mark.parametrize(
    "phone", ["+1 415 555 2671", "(415) 555-2671", "020 7946 0958", "+44 20-7946-0958"]
)
def test_phone_numbers_are_replaced(phone: str) -> None:
    assert redact_phone(f"call {phone} now") == "call [PHONE] now"


@pytest.mark.parametrize(
    "text", ["on 2024-01-15 at 10:30", "order 12345 costs 19.99", "version 1.2.3", "in 2025"]
)
def test_dates_amounts_and_versions_are_not_phone_numbers(text: str) -> None:
    assert redact_phone(text) == text


def test_secrets_are_replaced_and_their_labels_kept() -> None:
    text = (
        "key sk-proj-abcdefghijklmnop1234 and AKIAIOSFODNN7EXAMPLE, "
        "Authorization: Bearer abc.def-ghi_jkl012345, password=hunter2!x api_key: 'zz9-top'"
    )
    assert redact_secret(text) == (
        "key [SECRET] and [SECRET], Authorization: Bearer [SECRET], "
        "password=[SECRET] api_key: '[SECRET]'"
    )


def test_only_luhn_valid_card_numbers_are_replaced() -> None:
    text = "card 4111 1111 1111 1111, ref 1234 5678 9012 3456, 5500-0000-0000-0004"
    assert redact_card(text) == "card [CARD], ref 1234 5678 9012 3456, [CARD]"


def test_the_default_chain_redacts_every_message_and_keeps_roles() -> None:
    chain = RedactionChain(FeatureCapture().redact)
    messages = [
        {"role": "system", "content": "You answer support mail."},
        {"role": "user", "content": "ann@example.com, card 4111-1111-1111-1111, +1 415 555 2671"},
        {"role": "assistant", "content": "Thanks ann@example.com"},
    ]
    assert chain(messages) == [
        {"role": "system", "content": "You answer support mail."},
        {"role": "user", "content": "[EMAIL], card [CARD], [PHONE]"},
        {"role": "assistant", "content": "Thanks [EMAIL]"},
    ]


def test_a_user_hook_runs_after_the_built_ins_in_order() -> None:
    chain = RedactionChain(("email", "tests.distill.test_redaction:shout_hook"))
    messages = [
        {"role": "system", "content": "internal"},
        {"role": "user", "content": "hi from a@b.io"},
        {"role": "assistant", "content": "hello"},
    ]
    assert chain(messages) == [
        {"role": "user", "content": "HI FROM [EMAIL]"},
        {"role": "assistant", "content": "HELLO"},
    ]


@pytest.mark.parametrize(
    "path", ["tests.distill.nowhere:hook", "tests.distill.test_redaction:nope"]
)
def test_a_hook_that_cannot_be_loaded_is_a_config_error(path: str) -> None:
    with pytest.raises(ConfigError, match="cannot be loaded"):
        RedactionChain((path,))


def test_an_unknown_redactor_name_is_refused_by_the_config() -> None:
    with pytest.raises(ValueError, match="neither built in"):
        FeatureCapture(redact=("emails",))
