"""The copier's direct path from a decoded spool line to SQLite values stores exactly what the
LedgerRow path stores: same values, same types, for every shape a spool line can take."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest

from costwarden.ledger.rows import encode_pending, encode_record, pending_request_id, row_from_line
from costwarden.ledger.sqlite_rows import sqlite_values, sqlite_values_from_line
from costwarden.records import Attempt, Principal, Status, Tags, TokenUsage, UsageRecord
from tests.ledger.factory import make_record

WRITER = "4242-1700000000000000000-deadbeef"
MOMENT = datetime(2026, 3, 1, 23, 59, 58, 123456, tzinfo=UTC)


def varied_records() -> list[UsageRecord]:
    paris = timezone(timedelta(hours=2))
    error_attempt = Attempt(
        model="claude-x",
        provider="anthropic",
        endpoint="ep-2",
        upstream_model="claude-x",
        started_at=0.0,
        latency_ms=3.0,
        http_status=529,
        error="overloaded — réessayez",
    )
    return [
        make_record(0),
        make_record(1, cost=None),
        make_record(2, user=None, team=None),
        make_record(3, cost=Decimal("0.000000000123456789123456789")),
        make_record(4, cost=Decimal("1E-12")),
        make_record(5, cost=Decimal("12345.6789000")),
        make_record(6, created_at=MOMENT),  # microseconds
        make_record(7, created_at=datetime(2026, 3, 2, 0, 30, tzinfo=paris)),  # not UTC
        make_record(8, created_at=datetime(2026, 3, 2, 0, 30, 1, 5)),  # naive: taken as UTC
        make_record(9, finished_at=None, stream=True, latency_ms=0.0, upstream_latency_ms=7),
        make_record(
            10,
            principal=Principal("key_ü", "zoë 🦊", "équipe", None),
            tags=Tags(feature='quote " and \\ backslash', session=None, env="préprod", agent="a"),
            error_type="upstream_error",
            error_message="upstream said: \u2028 «non» \n line",
            status=Status.UPSTREAM_ERROR,
            http_status=502,
        ),
        make_record(
            11,
            usage=TokenUsage(1, 2, 3, 4, 5, estimated=True),
            attempts=[error_attempt, *make_record(11).attempts],
        ),
        make_record(12, attempts=[], reported_model=None, price_source=None, price_version=None),
    ]


def row_path(line: bytes) -> tuple[Any, ...]:
    return tuple(sqlite_values(row_from_line(orjson.loads(line), WRITER)))


@pytest.mark.parametrize("encode", [encode_record, encode_pending])
def test_direct_values_equal_the_row_path(encode: Any) -> None:
    for record in varied_records():
        line = encode(record)
        direct = sqlite_values_from_line(orjson.loads(line), WRITER)
        expected = row_path(line)
        assert direct == expected
        assert [type(v) for v in direct] == [type(v) for v in expected]


def test_a_line_without_optional_fields_gives_the_same_values() -> None:
    """A line holding only the fields every spool line has (e.g. one of an older writer)."""
    full = orjson.loads(encode_record(make_record(0)))
    required = ("request_id", "created_at", "api", "requested_model", "usage", "status")
    minimal = orjson.dumps({k: full[k] for k in (*required, "http_status")})
    assert sqlite_values_from_line(orjson.loads(minimal), None) == tuple(
        sqlite_values(row_from_line(orjson.loads(minimal)))
    )


@pytest.mark.parametrize("created_at", ["2026-03-01 12:00:00+00:00", "2026-03-01T12:00:00Z"])
def test_other_iso_timestamps_are_parsed(created_at: str) -> None:
    data = {**orjson.loads(encode_record(make_record(0))), "created_at": created_at}
    assert sqlite_values_from_line(data, None)[1:4:2] == (
        "2026-03-01T12:00:00.000000+00:00",
        "2026-03-01",
    )


def test_pending_request_id_reads_what_encode_pending_wrote() -> None:
    for record in varied_records():
        assert pending_request_id(encode_pending(record)) == record.request_id
        assert pending_request_id(encode_record(record)) is None


@pytest.mark.parametrize("request_id", ['cw-"quoted"', "cw-back\\slash", "cw-\x01ctl"])
def test_pending_request_id_leaves_escaped_ids_to_the_decoder(request_id: str) -> None:
    line = encode_pending(make_record(0, request_id=request_id))
    assert pending_request_id(line) is None
    assert orjson.loads(line)["request_id"] == request_id


def test_pending_request_id_of_a_unicode_id() -> None:
    assert pending_request_id(encode_pending(make_record(0, request_id="cw-é🦊"))) == "cw-é🦊"
