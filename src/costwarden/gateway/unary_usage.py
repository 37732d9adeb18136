"""Usage and cost of a non-streamed attempt, from its body — whole, unparseable or cut short.

Upstream's ``usage`` is authoritative. Without it the gateway counts: the prompt from the
request, the output from the answer's text. A body that is not JSON (a 200 that lies, or one
cut mid-body by a reset) still carries text the upstream generated, and was billed for, so the
text is salvaged from the JSON string fields that hold answers and counted: a lower bound (a
cut body lost the rest of the answer), never a silent zero.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from costwarden.providers.registry import adapter_for
from costwarden.records import Attempt, TokenUsage, UsageRecord

if TYPE_CHECKING:
    from costwarden.gateway.routing import Target
    from costwarden.gateway.upstream import CallSpec
    from costwarden.pricing import PriceBook, TokenCounter

# A JSON string holding generated text: OpenAI ``message.content`` / legacy ``text``,
# Anthropic ``content[].text``. The closing quote may be missing when the body was cut.
_TEXT_FIELD = re.compile(rb'"(?:content|text)"\s*:\s*"((?:[^"\\]|\\.)*)(?:"|\\?$)')


class UnaryPricer:
    """Prices one attempt of a non-streamed call (stateless: price book + token counter)."""

    def __init__(self, prices: PriceBook, tokens: TokenCounter) -> None:
        self._prices = prices
        self._tokens = tokens

    def price(
        self, spec: CallSpec, target: Target, attempt: Attempt, record: UsageRecord, body: bytes
    ) -> dict[str, Any] | None:
        """Set the attempt's usage and cost; return the body's JSON object (None when the body
        is not one)."""
        payload = _json_object(body)
        usage: TokenUsage | None = None
        if payload is not None:
            parsed = adapter_for(target.endpoint.provider).parse_usage(spec.api, payload)
            usage, attempt.reported_model = parsed.usage, parsed.reported_model
        if usage is None:
            text = answer_text(payload) if payload is not None else salvaged_text(body)
            usage = self._estimate(spec, record, text)
        attempt.usage = usage
        price = self._prices.price_for(target.model, target.endpoint, record.created_at)
        attempt.cost = price.cost(usage) if price is not None else None
        return payload

    def _estimate(self, spec: CallSpec, record: UsageRecord, text: str) -> TokenUsage:
        model = record.resolved_model or record.requested_model
        return TokenUsage(
            input_tokens=self._tokens.estimate_request(spec.api, model, spec.body),
            output_tokens=self._tokens.count(model, text) if text else 0,
            estimated=True,
        )


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) else None


def answer_text(payload: dict[str, Any]) -> str:
    """Generated text of a non-streamed answer, to count when upstream reports no usage."""
    parts: list[str] = []
    for choice in payload.get("choices") or ():
        if isinstance(choice, dict):
            message = choice.get("message")
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                parts.append(message["content"])
            elif isinstance(choice.get("text"), str):
                parts.append(choice["text"])
    for block in payload.get("content") or ():
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "".join(parts)


def salvaged_text(body: bytes) -> str:
    """The answer text in a body that does not parse (see the module docstring)."""
    return "".join(_unquote(m.group(1)) for m in _TEXT_FIELD.finditer(body))


def _unquote(raw: bytes) -> str:
    try:
        return str(orjson.loads(b'"' + raw + b'"'))
    except orjson.JSONDecodeError:  # cut inside an escape sequence: keep what reads
        return raw.decode("utf-8", "replace")
