"""Rate-limit rules → GCRA buckets per request, and the headers / errors they produce.

Requests per minute cost 1 each; tokens per minute are charged the request's worst case
(estimated input + output bound) at admission and corrected to the real count at settlement.
Buckets live in the shared backend, so N replicas enforce one limit, not N times it.
"""

from __future__ import annotations

import math

from costwarden.errors import RateLimited
from costwarden.policy.budgets import scope_label
from costwarden.policy.config import RateLimitRule
from costwarden.state.base import AdmissionOutcome, RateBucket, RateState

WINDOW_S = 60.0


def bucket_templates(
    rules: tuple[RateLimitRule, ...], dimensions: dict[str, str | None]
) -> tuple[RateBucket, ...]:
    """The buckets of these dimension values (rules naming the same bucket keep the smallest
    limit). Token buckets charge each request's own tokens (``cost=None``): they depend on who
    asks only, so the engine compiles them once per caller."""
    by_key: dict[str, RateBucket] = {}
    for rule in rules:
        label = scope_label(rule.scope, dimensions)
        if label is None:
            continue
        candidates = []
        if rule.rpm is not None:
            candidates.append(RateBucket(f"rate:{label}:rpm", "requests", rule.rpm, 1, WINDOW_S))
        if rule.tpm is not None:
            candidates.append(RateBucket(f"rate:{label}:tpm", "tokens", rule.tpm, None, WINDOW_S))
        for bucket in candidates:
            known = by_key.get(bucket.key)
            if known is None or bucket.limit < known.limit:
                by_key[bucket.key] = bucket
    return tuple(by_key.values())


def rate_limit_headers(states: tuple[RateState, ...]) -> dict[str, str]:
    """OpenAI-style ``x-ratelimit-*`` headers from the tightest bucket of each kind.

    Tightest: the smallest share remaining, then the fewest remaining; the first such bucket
    wins a tie."""
    return {
        name.decode(): value.decode() for name, value in rate_limit_header_pairs(states)
    }


def rate_limit_header_pairs(states: tuple[RateState, ...]) -> tuple[tuple[bytes, bytes], ...]:
    """``rate_limit_headers`` as the ASGI response wants them (bytes): every admitted request
    sends them, so they are built in one pass with no intermediate strings."""
    requests: RateState | None = None
    tokens: RateState | None = None
    for state in states:
        if state.kind == "requests":
            if requests is None or _tighter(state, requests):
                requests = state
        elif tokens is None or _tighter(state, tokens):
            tokens = state
    pairs: tuple[tuple[bytes, bytes], ...] = ()
    if requests is not None:
        pairs = (
            (b"x-ratelimit-limit-requests", b"%d" % requests.limit),
            (b"x-ratelimit-remaining-requests", b"%d" % requests.remaining),
            (b"x-ratelimit-reset-requests", _duration_bytes(requests.reset_s)),
        )
    if tokens is not None:
        pairs += (
            (b"x-ratelimit-limit-tokens", b"%d" % tokens.limit),
            (b"x-ratelimit-remaining-tokens", b"%d" % tokens.remaining),
            (b"x-ratelimit-reset-tokens", _duration_bytes(tokens.reset_s)),
        )
    return pairs


# Reset times under a second (a bucket used well below its limit: nearly every response),
# formatted once: ``go_duration`` of 0-999 ms.
_MILLISECONDS = tuple(b"%dms" % ms for ms in range(1000))


def _duration_bytes(seconds: float) -> bytes:
    if seconds < 0.9995:  # rounds to at most 999 ms
        return _MILLISECONDS[max(0, round(seconds * 1000))]
    return go_duration(seconds).encode()


def _tighter(state: RateState, than: RateState) -> bool:
    # remaining / limit compared without division (limits are positive integers)
    mine, theirs = state.remaining * than.limit, than.remaining * state.limit
    return mine < theirs or (mine == theirs and state.remaining < than.remaining)


def rate_limited(outcome: AdmissionOutcome, requested_tokens: int) -> RateLimited:
    key = outcome.refused_key or "rate"
    headers = rate_limit_headers(outcome.rates)
    state = outcome.rates[0] if outcome.rates else None
    unit = "tokens" if state is not None and state.kind == "tokens" else "requests"
    limit = state.limit if state is not None else 0
    details: dict[str, object] = {"bucket": key, "limit_per_minute": limit, "unit": unit}
    if outcome.retry_after_s is None:
        message = (
            f"rate limit {key!r}: this request needs {requested_tokens} tokens, more than the "
            f"limit of {limit} tokens per minute; lower max_tokens or shorten the prompt"
        )
        headers["x-should-retry"] = "false"
    else:
        wait = max(1, math.ceil(outcome.retry_after_s))
        message = f"rate limit {key!r} of {limit} {unit} per minute reached; retry in {wait}s"
        headers["retry-after"] = str(wait)
        headers["retry-after-ms"] = str(max(1, math.ceil(outcome.retry_after_s * 1000)))
        details["retry_after_s"] = round(outcome.retry_after_s, 3)
    return RateLimited(message, headers=headers, details=details)


def go_duration(seconds: float) -> str:
    """The duration format OpenAI uses in reset headers: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text
