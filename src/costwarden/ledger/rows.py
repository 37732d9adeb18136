"""The record's three shapes in the ledger: spool line, table row, and back to a UsageRecord.

The spool line of a finished request is the JSON of ``UsageRecord.to_dict()`` (one line per
record). It is written with orjson's native dataclass support rather than ``to_dict()``: same
JSON (a test holds them equal), but ~7 µs instead of ~86 µs per record on the request hot path.

A request sent upstream but not finished yet has a *pending* line: only what is known when the
first upstream attempt starts (ids, principal, tags, models, provider), with
``"status": "in_flight"``. It is ~400 bytes and ~1.7 µs to encode, against ~1.4 KB and ~7 µs
for a whole record: usage, cost and attempts are empty then, and writing them out would only
cost time on the request path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import orjson

from costwarden.records import Status, UsageRecord, record_from_dict


class LedgerRow(NamedTuple):
    """One ``usage_records`` row with canonical Python values; backends adapt the types."""

    request_id: str
    created_at: datetime  # UTC
    finished_at: datetime | None  # UTC
    day: date  # UTC date of created_at
    api: str
    stream: bool
    key_id: str | None
    user_id: str | None
    team: str | None
    key_name: str | None
    feature: str | None
    session: str | None
    env: str | None
    agent: str | None
    requested_model: str
    resolved_model: str | None
    provider: str | None
    upstream_model: str | None
    reported_model: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    usage_estimated: bool
    cost: Decimal | None
    cost_input: Decimal | None
    cost_output: Decimal | None
    price_source: str | None
    price_version: str | None
    latency_ms: float
    upstream_latency_ms: float
    status: str
    http_status: int
    error_type: str | None
    error_message: str | None
    attempts: str  # JSON array text
    # The spool writer (one gateway process's ``Ledger``) whose spool held the line; None for
    # rows stored directly. A dead writer's rows still in flight are marked interrupted.
    spool_writer: str | None = None
    # What savings stages saved (see ``records.Saving``): the sum, and the list as JSON text;
    # both NULL for a request no stage touched (nearly all, on a gateway without savings).
    cost_saved: Decimal | None = None
    savings: str | None = None


COLUMNS: tuple[str, ...] = LedgerRow._fields
IN_FLIGHT = Status.IN_FLIGHT.value
_NO_USAGE: Mapping[str, Any] = {
    "input_tokens": 0,
    "output_tokens": 0,
    "cache_read_tokens": 0,
    "cache_write_tokens": 0,
    "reasoning_tokens": 0,
    "estimated": False,
}


def _decimal_as_str(value: object) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} in a usage record")


def encode_record(record: UsageRecord) -> bytes:
    """The record as one newline-terminated JSON line (same JSON as ``to_dict()``)."""
    return orjson.dumps(record, default=_decimal_as_str, option=orjson.OPT_APPEND_NEWLINE)


# What ``encode_pending`` writes first: orjson keeps the dict's key order and adds no spaces.
_PENDING_PREFIX = b'{"status":"in_flight","request_id":"'


def encode_pending(record: UsageRecord) -> bytes:
    """The pending line of a request now in flight (see module docstring).

    The status is written as ``in_flight`` whatever ``record.status`` says: the record is still
    being completed, and its final line (``encode_record``) supersedes this one in the store.
    The status and request_id come first, so that ``pending_request_id`` can read them.
    """
    return orjson.dumps(
        {
            "status": "in_flight",
            "request_id": record.request_id,
            "created_at": record.created_at,
            "api": record.api,
            "stream": record.stream,
            "principal": record.principal,
            "tags": record.tags,
            "requested_model": record.requested_model,
            "resolved_model": record.resolved_model,
            "provider": record.provider,
            "upstream_model": record.upstream_model,
        },
        option=orjson.OPT_APPEND_NEWLINE,
    )


def as_utc(moment: datetime) -> datetime:
    """Aware UTC datetime; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _utc_from_iso(text: str | None) -> datetime | None:
    return as_utc(datetime.fromisoformat(text)) if text else None


def _decimal_or_none(text: str | None) -> Decimal | None:
    return Decimal(text) if text is not None else None


def row_from_line(data: Mapping[str, Any], spool_writer: str | None = None) -> LedgerRow:
    """Row from a decoded spool line: a finished record or a pending one."""
    if data["status"] == IN_FLIGHT:
        return row_from_pending(data, spool_writer)
    return row_from_dict(data, spool_writer)


def row_from_pending(data: Mapping[str, Any], spool_writer: str | None = None) -> LedgerRow:
    """Row of a request in flight: no usage, no cost (NULL: unknown, never 0), no HTTP status."""
    return row_from_dict(pending_as_dict(data), spool_writer)


def pending_as_dict(data: Mapping[str, Any]) -> dict[str, Any]:
    """A decoded pending line completed into ``to_dict()`` form (what a pending row holds)."""
    return {**data, "usage": _NO_USAGE, "http_status": 0, "attempts": []}


def pending_request_id(line: bytes) -> str | None:
    """The request_id of a pending line, read without decoding the JSON (the copier drops a
    pending line whose final line is in the same batch, so most are never decoded at all).

    None when ``line`` does not start the way ``encode_pending`` writes it (a final line), or
    when the id holds a JSON escape: the caller then decodes the line in full.
    """
    if not line.startswith(_PENDING_PREFIX):
        return None
    end = line.find(b'"', len(_PENDING_PREFIX))
    raw = line[len(_PENDING_PREFIX) : end]
    if end < 0 or b"\\" in raw:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None


def row_from_dict(data: Mapping[str, Any], spool_writer: str | None = None) -> LedgerRow:
    """Row from a record in ``to_dict()`` form (what a spool line decodes to)."""
    created_at = as_utc(datetime.fromisoformat(data["created_at"]))
    principal = data.get("principal") or {}
    tags = data.get("tags") or {}
    usage = data["usage"]
    return LedgerRow(
        request_id=data["request_id"],
        created_at=created_at,
        finished_at=_utc_from_iso(data.get("finished_at")),
        day=created_at.date(),
        api=data["api"],
        stream=bool(data.get("stream")),
        key_id=principal.get("key_id"),
        user_id=principal.get("user"),
        team=principal.get("team"),
        key_name=principal.get("key_name"),
        feature=tags.get("feature"),
        session=tags.get("session"),
        env=tags.get("env"),
        agent=tags.get("agent"),
        requested_model=data["requested_model"],
        resolved_model=data.get("resolved_model"),
        provider=data.get("provider"),
        upstream_model=data.get("upstream_model"),
        reported_model=data.get("reported_model"),
        input_tokens=usage["input_tokens"],
        output_tokens=usage["output_tokens"],
        cache_read_tokens=usage["cache_read_tokens"],
        cache_write_tokens=usage["cache_write_tokens"],
        reasoning_tokens=usage["reasoning_tokens"],
        usage_estimated=bool(usage["estimated"]),
        cost=_decimal_or_none(data.get("cost")),
        cost_input=_decimal_or_none(data.get("cost_input")),
        cost_output=_decimal_or_none(data.get("cost_output")),
        price_source=data.get("price_source"),
        price_version=data.get("price_version"),
        latency_ms=float(data.get("latency_ms") or 0.0),
        upstream_latency_ms=float(data.get("upstream_latency_ms") or 0.0),
        status=data["status"],
        http_status=data["http_status"],
        error_type=data.get("error_type"),
        error_message=data.get("error_message"),
        attempts=orjson.dumps(data.get("attempts") or []).decode(),
        spool_writer=spool_writer,
        cost_saved=_decimal_or_none(savings_total(data.get("savings"))),
        savings=savings_json(data.get("savings")),
    )


def savings_total(savings: Sequence[Mapping[str, Any]] | None) -> str | None:
    """The exact sum of the savings' ``cost_saved`` as decimal text (None: none, or unknown)."""
    if not savings:
        return None
    total = Decimal(0)
    for saving in savings:
        saved = saving.get("cost_saved")
        if saved is None:
            return None
        total += Decimal(saved)
    return str(total)


def savings_json(savings: Sequence[Mapping[str, Any]] | None) -> str | None:
    return orjson.dumps(savings).decode() if savings else None


def row_from_record(record: UsageRecord) -> LedgerRow:
    return row_from_dict(orjson.loads(encode_record(record)))


def _json_or_none(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _iso(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return as_utc(value).isoformat()


def _text(value: Decimal | str | None) -> str | None:
    return None if value is None else str(value)


def record_from_columns(row: Mapping[str, Any]) -> UsageRecord:
    """UsageRecord from a stored row, whatever native types the backend returned."""
    principal = None
    if row["key_id"] is not None:
        principal = {
            "key_id": row["key_id"],
            "user": row["user_id"],
            "team": row["team"],
            "key_name": row["key_name"],
        }
    attempts = row["attempts"]
    return record_from_dict(
        {
            "request_id": row["request_id"],
            "created_at": _iso(row["created_at"]),
            "finished_at": _iso(row["finished_at"]),
            "api": row["api"],
            "stream": bool(row["stream"]),
            "principal": principal,
            "tags": {k: row[k] for k in ("feature", "session", "env", "agent")},
            "requested_model": row["requested_model"],
            "resolved_model": row["resolved_model"],
            "provider": row["provider"],
            "upstream_model": row["upstream_model"],
            "reported_model": row["reported_model"],
            "usage": {
                "input_tokens": row["input_tokens"],
                "output_tokens": row["output_tokens"],
                "cache_read_tokens": row["cache_read_tokens"],
                "cache_write_tokens": row["cache_write_tokens"],
                "reasoning_tokens": row["reasoning_tokens"],
                "estimated": bool(row["usage_estimated"]),
            },
            "cost": _text(row["cost"]),
            "cost_input": _text(row["cost_input"]),
            "cost_output": _text(row["cost_output"]),
            "price_source": row["price_source"],
            "price_version": row["price_version"],
            "latency_ms": row["latency_ms"],
            "upstream_latency_ms": row["upstream_latency_ms"],
            "status": row["status"],
            "http_status": row["http_status"],
            "error_type": row["error_type"],
            "error_message": row["error_message"],
            "attempts": orjson.loads(attempts) if isinstance(attempts, str | bytes) else attempts,
            "savings": _json_or_none(row.get("savings")),
        }
    )
