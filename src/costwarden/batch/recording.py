"""An item's try as a ledger record, and as the outcome the queue stores.

Every try that reaches an upstream ends in exactly one ledger record (invariant 3), with the
deterministic request id ``cwb-<item>-<attempt>``. A *done* item's record is first stored in
the queue with the outcome (one transaction), then appended to the ledger: a worker killed in
between leaves the record in the queue, where the catch-up (worker.py) finds it and appends
it again; the ledger keeps the first final line of a request id, so it is stored once.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import orjson

from costwarden.batch.models import ClaimedItem, ItemStatus, Job, Outcome
from costwarden.errors import CostwardenError
from costwarden.gateway.outcome import finish_record, mark_error
from costwarden.ledger.rows import encode_record
from costwarden.pricing import ResolvedPrice
from costwarden.providers.registry import adapter_for
from costwarden.records import Attempt, Status, Tags, TokenUsage, UsageRecord, utcnow

# Statuses worth another try later (rate limits, overload, outages); anything else in 4xx is
# the request's own fault and fails the item at once.
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
LEASE_LOST = "batch_lease_lost"


def new_record(job: Job, item: ClaimedItem) -> UsageRecord:
    """The record of one try, attributed to whoever submitted the job."""
    return UsageRecord(
        request_id=item.request_id,
        created_at=utcnow(),
        api=job.api,
        requested_model=job.model,
        principal=job.principal,
        tags=Tags(feature=job.tags.feature, env=job.tags.env, session=job.job_id),
        resolved_model=job.model,
    )


def refusal_record(job: Job, item: ClaimedItem, error: CostwardenError) -> UsageRecord:
    """The record of a try the policy refused, as the gateway keeps one of a refused request.
    Its id is its own (``…-refused-<random>``): the item's next try reuses the attempt number,
    and with it ``cwb-<item>-<attempt>``, since this try never reached an upstream."""
    record = new_record(job, item)
    record.request_id = f"{item.request_id}-refused-{os.urandom(3).hex()}"
    mark_error(record, error)
    finish_record(record, time.perf_counter(), Status.REJECTED, error.http_status)
    return record


def price_attempt(
    attempt: Attempt, api: str, payload: Any, price: ResolvedPrice | None, provider: str
) -> None:
    """Usage from the answer (authoritative) and its cost at ``price`` onto ``attempt``."""
    usage: TokenUsage | None = None
    if isinstance(payload, dict):
        parsed = adapter_for(provider).parse_usage(api, payload)
        usage, attempt.reported_model = parsed.usage, parsed.reported_model
    attempt.usage = usage or TokenUsage(estimated=True)
    attempt.cost = price.cost(attempt.usage) if price is not None else None


def error_json(code: str, message: str) -> str:
    return orjson.dumps({"code": code, "message": message[:500]}).decode()


class Outcomes:
    """Turns a finished try into the queue's ``Outcome`` (retry timing included)."""

    def __init__(
        self, backoff_base_s: float, backoff_max_s: float, rng: random.Random | None = None
    ) -> None:
        self._base = backoff_base_s
        self._max = backoff_max_s
        self._rng = rng or random.Random()

    def done(
        self, item: ClaimedItem, record: UsageRecord, t0: float, http_status: int, body: str
    ) -> Outcome:
        finish_record(record, t0, Status.OK, http_status)
        return Outcome(
            item.item_id,
            item.lease_token,
            ItemStatus.DONE,
            item.request_id,
            http_status=http_status,
            result=body,
            cost=record.cost,
            record=encode_record(record).decode(),
        )

    def failed(
        self,
        job: Job,
        item: ClaimedItem,
        record: UsageRecord,
        error: tuple[str, str, int | None],
        t0: float,
    ) -> Outcome:
        """A try that failed with (code, message, HTTP status): retried later while it may
        still succeed and attempts are left, else the item fails."""
        code, message, http_status = error
        retryable = http_status is None or http_status in RETRYABLE_STATUSES
        status = Status.UPSTREAM_ERROR if http_status is not None else Status.UNAVAILABLE
        record.error_type, record.error_message = code, message[:500]
        finish_record(record, t0, status, http_status or 502)
        again = retryable and item.attempt < job.max_attempts
        return Outcome(
            item.item_id,
            item.lease_token,
            ItemStatus.QUEUED if again else ItemStatus.FAILED,
            item.request_id,
            http_status=http_status,
            error=error_json(code, message),
            retry_at=time.time() + self.backoff(item.attempt) if again else 0.0,
        )

    def rejected(self, item: ClaimedItem, record: UsageRecord, code: str, message: str) -> Outcome:
        """A try refused before any upstream call (its model is not configured here)."""
        record.error_type, record.error_message = code, message
        finish_record(record, time.perf_counter(), Status.REJECTED, 400)
        return Outcome(
            item.item_id,
            item.lease_token,
            ItemStatus.FAILED,
            item.request_id,
            http_status=400,
            error=error_json(code, message),
        )

    def backoff(self, attempt: int) -> float:
        """Exponential, half-jittered: spreads the retries of many items after an outage."""
        wait = min(self._max, self._base * 2.0 ** max(attempt - 1, 0))
        return wait * (0.5 + self._rng.random() / 2)


def interrupted(record: UsageRecord, t0: float, why: str) -> None:
    """Close the record of a try abandoned mid-call (drain ran out of notice): the upstream
    may bill it, and how much is unknown — NULL, never 0."""
    record.error_type, record.error_message = "batch_released", why
    finish_record(record, t0, Status.INTERRUPTED, 499)
    record.cost = record.cost_input = record.cost_output = None


def lease_lost(record: UsageRecord) -> None:
    """The try succeeded, but its lease had run out and another worker re-claimed the item:
    the money was spent, so the record stays, marked so reports can tell it from the kept one."""
    record.error_type = LEASE_LOST
    record.error_message = "lease ran out before the result was stored; another try was kept"
