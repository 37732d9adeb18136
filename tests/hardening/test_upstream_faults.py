"""Upstream faults, each × (unary, streamed) × (OpenAI, Anthropic protocol), over real HTTP.

For every fault: what the client gets, how many tries reached the upstream (retries and
fallbacks as configured), exactly one ledger record per client request, and a cost that is
the price of what was generated — counted from what arrived when upstream reported no usage.
The fake upstream produces a known output (16 one-token words), so "generated" is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from costwarden.providers.fake_upstream import FakeUpstream
from costwarden.records import Status, UsageRecord
from tests.gateway.conftest import RunningGateway, StartGateway, start_gateway, upstream
from tests.hardening.fault_support import (
    ANTHROPIC,
    FALLING,
    GENERATED,
    OPENAI,
    Exchange,
    call,
    fault_gateway,
    ledger_records,
    priced,
    sse_events,
)

__all__ = ["start_gateway", "upstream"]  # fixtures, used by name


@dataclass(frozen=True)
class Outcome:
    http: int  # what the client gets
    status: Status  # the ledger record's status
    tries: int  # requests the upstream saw
    output: int | None  # output tokens billed; None: counted from a partial body (0 < n)
    estimated: bool = False  # usage counted by the gateway, not reported by upstream


@dataclass(frozen=True)
class Fault:
    name: str
    knobs: dict[str, str]
    unary: Outcome
    streamed: Outcome


_DOWN = Outcome(502, Status.UNAVAILABLE, 3, 0)
FAULTS = (
    Fault(
        "5xx",
        {"status": "500"},
        Outcome(500, Status.UPSTREAM_ERROR, 3, 0),
        Outcome(500, Status.UPSTREAM_ERROR, 3, 0),
    ),
    Fault(
        "5xx-then-ok",
        {"flaky": "2", "flaky_id": "{id}"},
        Outcome(200, Status.OK, 3, GENERATED),
        Outcome(200, Status.OK, 3, GENERATED),
    ),
    Fault(
        "slow-headers",
        {"latency_ms": "1500"},
        Outcome(504, Status.UNAVAILABLE, 3, 0),
        Outcome(504, Status.UNAVAILABLE, 3, 0),
    ),
    Fault("reset-before-headers", {"reset": "headers"}, _DOWN, _DOWN),
    Fault(
        "reset-mid-body",
        {"reset": "body", "cut_after": "4"},
        Outcome(502, Status.UNAVAILABLE, 3, None, estimated=True),
        Outcome(200, Status.STREAM_CUT, 1, 4, estimated=True),
    ),
    Fault(
        "cut-mid-body",
        {"cut_after": "4"},
        Outcome(502, Status.UNAVAILABLE, 3, None, estimated=True),
        Outcome(200, Status.STREAM_CUT, 1, 4, estimated=True),
    ),
    Fault(
        "stalled-stream",
        {"chunk_delay_ms": "1500"},
        Outcome(200, Status.OK, 1, GENERATED),  # unary answers are not chunked
        Outcome(200, Status.STREAM_CUT, 1, 0, estimated=True),
    ),
    Fault(
        "malformed",
        {"malformed": "1"},
        Outcome(502, Status.UPSTREAM_ERROR, 1, GENERATED, estimated=True),
        Outcome(200, Status.OK, 1, GENERATED),
    ),
    Fault(
        "no-usage",
        {"no_usage": "1"},
        Outcome(200, Status.OK, 1, GENERATED, estimated=True),
        Outcome(200, Status.OK, 1, GENERATED, estimated=True),
    ),
    Fault(
        "malformed-no-usage",
        {"malformed": "1", "no_usage": "1"},
        Outcome(502, Status.UPSTREAM_ERROR, 1, GENERATED, estimated=True),
        Outcome(200, Status.OK, 1, GENERATED, estimated=True),
    ),
)


@pytest.mark.parametrize("protocol", [OPENAI, ANTHROPIC])
@pytest.mark.parametrize("stream", [False, True], ids=["unary", "streamed"])
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_fault(
    fault: Fault,
    stream: bool,
    protocol: str,
    *,
    tmp_path: Path,
    upstream: FakeUpstream,
    start_gateway: StartGateway,
) -> None:
    gw = await fault_gateway(tmp_path, upstream, start_gateway)
    expected = fault.streamed if stream else fault.unary
    exchange = await call(gw, protocol, stream, fault.knobs)
    assert exchange.status == expected.http, exchange.body[:300]
    assert exchange.upstream_tries == expected.tries
    records = await ledger_records(gw)
    assert set(records) == {exchange.request_id}  # exactly one record, this request's
    record = records[exchange.request_id]
    assert record.status is expected.status
    assert len(record.attempts) == expected.tries
    _check_body(exchange, expected, protocol, stream)
    _check_billing(gw, record, expected)


def _check_body(exchange: Exchange, expected: Outcome, protocol: str, stream: bool) -> None:
    if expected.http != 200:
        error = exchange.json()  # an error body in the protocol's shape, never SSE
        assert error["type"] == "error" if protocol == ANTHROPIC else "error" in error
        return
    if not stream:
        exchange.json()  # a whole, parseable answer
        return
    events = sse_events(exchange.body)
    last = orjson.loads(events[-1]) if events[-1] != b"[DONE]" else None
    if expected.status is Status.STREAM_CUT:  # the partial stream ends in an error event
        assert last is not None and "error" in last
        assert exchange.body.endswith(b"\n\n")
    elif protocol == OPENAI:
        assert last is None  # [DONE]
    else:
        assert last is not None and last["type"] == "message_stop"


def _check_billing(gw: RunningGateway, record: UsageRecord, expected: Outcome) -> None:
    assert record.usage.estimated is expected.estimated
    if expected.output is None:  # partial unary bodies: each try billed for what arrived
        answered = [a for a in record.attempts if a.usage is not None]
        assert len(answered) == expected.tries
        assert all(0 < a.usage.output_tokens <= GENERATED for a in answered if a.usage)
    else:
        assert record.usage.output_tokens == expected.output
    if expected.output != 0 or expected.estimated:
        assert record.usage.input_tokens > 0  # the prompt was processed: billed
    assert record.cost == priced(gw, record)
    if record.usage.total_tokens:
        assert record.cost is not None and record.cost > 0


@pytest.mark.parametrize("protocol", [OPENAI, ANTHROPIC])
@pytest.mark.parametrize("stream", [False, True], ids=["unary", "streamed"])
async def test_fallback_serves_when_primary_is_down(
    stream: bool,
    protocol: str,
    tmp_path: Path,
    upstream: FakeUpstream,
    start_gateway: StartGateway,
) -> None:
    """OpenAI's 503 and Anthropic's 529 (overloaded) both move on to the fallback model."""
    gw = await fault_gateway(tmp_path, upstream, start_gateway)
    exchange = await call(gw, protocol, stream, {}, model_name=FALLING[protocol])
    assert exchange.status == 200, exchange.body[:300]
    records = await ledger_records(gw)
    record = records[exchange.request_id]
    assert set(records) == {exchange.request_id}
    assert [a.http_status for a in record.attempts] == [503 if protocol == OPENAI else 529, 200]
    assert exchange.upstream_tries == 2
    assert record.requested_model == FALLING[protocol]
    assert record.resolved_model == record.attempts[-1].model != FALLING[protocol]
    assert record.usage.output_tokens == GENERATED and not record.usage.estimated
    assert record.cost == priced(gw, record) and record.cost is not None and record.cost > 0


@pytest.mark.parametrize("protocol", [OPENAI, ANTHROPIC])
async def test_retry_after_is_honoured(
    protocol: str, tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    """A 429 with Retry-After within the backoff cap waits that long, then succeeds."""
    retry = {"backoff_base_s": 0.001, "backoff_max_s": 1.0}
    gw = await fault_gateway(tmp_path, upstream, start_gateway, retry=retry)
    knobs = {"flaky": "1", "flaky_id": "{id}", "flaky_status": "429", "retry_after": "0.4"}
    exchange = await call(gw, protocol, False, knobs)
    assert exchange.status == 200 and exchange.upstream_tries == 2
    assert exchange.seconds >= 0.4
    record = (await ledger_records(gw))[exchange.request_id]
    assert [a.http_status for a in record.attempts] == [429, 200]
    assert record.status is Status.OK and record.usage.output_tokens == GENERATED


async def test_many_faulty_requests_one_record_each(
    tmp_path: Path, upstream: FakeUpstream, start_gateway: StartGateway
) -> None:
    """Every fault, both protocols, both modes, through one gateway: one record each."""
    gw = await fault_gateway(tmp_path, upstream, start_gateway)
    ids = []
    for fault in FAULTS:
        for protocol in (OPENAI, ANTHROPIC):
            for stream in (False, True):
                ids.append((await call(gw, protocol, stream, fault.knobs)).request_id)
    records = await ledger_records(gw)
    assert len(ids) == len(set(ids)) == len(records)
    assert set(records) == set(ids)
    assert all(r.status is not Status.IN_FLIGHT for r in records.values())
