"""Loop-detection fingerprints: the same request is recognised, volatile fields aside."""

from __future__ import annotations

from typing import Any

import orjson

from costwarden.gateway.admission import request_fingerprint


def fingerprint(body: dict[str, Any]) -> str:
    return request_fingerprint(body, orjson.dumps(body))


def step(content: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra}


def test_a_resent_request_has_the_same_fingerprint() -> None:
    assert fingerprint(step("run the tool")) == fingerprint(step("run the tool"))
    assert fingerprint(step("run the tool")) != fingerprint(step("run the other tool"))


def test_volatile_fields_do_not_change_it() -> None:
    first = step("run the tool", metadata={"trace": "a1"}, user="u-1", stream=True)
    again = step("run the tool", metadata={"trace": "b2"}, user="u-2", stream=True)
    assert fingerprint(first) == fingerprint(again)
    assert fingerprint(first) != fingerprint(step("other", metadata={"trace": "a1"}, stream=True))


def test_key_order_does_not_change_it_once_volatile_fields_are_dropped() -> None:
    ordered = {"model": "gpt-4o", "messages": [], "user": "u-1"}
    reordered = {"user": "u-2", "messages": [], "model": "gpt-4o"}
    assert fingerprint(ordered) == fingerprint(reordered)
