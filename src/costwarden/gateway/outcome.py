"""Closing a request's record, and the headers that tell the client about it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from costwarden.errors import CostwardenError
from costwarden.gateway.upstream import CallSpec
from costwarden.records import Status, UsageRecord, utcnow
from costwarden.savings.stages import Exchange

if TYPE_CHECKING:
    from costwarden.gateway.services import Services


@dataclass(slots=True)
class Flight:
    """One client request on its way: what to send upstream, its record, when it began."""

    spec: CallSpec
    record: UsageRecord
    t0: float  # perf_counter() at arrival
    headers: tuple[tuple[bytes, bytes], ...] = ()  # policy headers (x-ratelimit-*) to send
    exchange: Exchange | None = None  # what the savings stages know of it (when any are on)


def finish_record(record: UsageRecord, t0: float, status: Status, http_status: int) -> None:
    """Close the record: totals from attempts, timings, outcome."""
    record.finish_costs()
    record.status = status
    record.http_status = http_status
    record.latency_ms = round((time.perf_counter() - t0) * 1000, 3)
    record.upstream_latency_ms = round(sum(a.latency_ms for a in record.attempts), 3)
    if record.attempts:
        last = record.attempts[-1]
        record.provider = last.provider
        record.upstream_model = last.upstream_model
        record.reported_model = last.reported_model
        record.resolved_model = last.model
    record.finished_at = utcnow()


def conclude(
    services: Services,
    record: UsageRecord,
    t0: float,
    status: Status,
    http_status: int,
    *,
    exchange: Exchange | None = None,
) -> None:
    """Close the record, let the savings stages price what they saved, append it to the
    ledger and count it: the one way every request with a record ends (unary, streamed,
    refused, answered from a cache, failed)."""
    finish_record(record, t0, status, http_status)
    if exchange is not None:
        services.stages.on_finish(exchange)
    services.ledger.append(record)
    services.observe(record)


def mark_error(record: UsageRecord, exc: CostwardenError) -> None:
    record.status = Status.REJECTED if not record.attempts else Status.UNAVAILABLE
    record.error_type = exc.code
    record.error_message = exc.message[:500]


def id_headers(record: UsageRecord | None) -> tuple[tuple[bytes, bytes], ...]:
    if record is None:
        return ()
    headers = [(b"x-request-id", record.request_id.encode())]
    if record.cost is not None and record.finished_at is not None:
        headers.append((b"x-costwarden-cost", str(record.cost).encode()))
    if record.resolved_model:
        headers.append((b"x-costwarden-model", record.resolved_model.encode()))
    if len(record.attempts) > 1:
        headers.append((b"x-costwarden-attempts", str(len(record.attempts)).encode()))
    if record.savings and record.finished_at is not None:
        saved = record.cost_saved
        if saved is not None:
            headers.append((b"x-costwarden-saved", str(saved).encode()))
    return tuple(headers)
