"""The one record that flows through the pipeline, and the types it is made of.

A ``UsageRecord`` is created when a client request arrives and completed as it moves:
auth fills the principal, routing the resolved model, each upstream try adds an ``Attempt``,
pricing fills the cost. The ledger stores it as is; reports read only the ledger.

Token convention (the one genai-prices uses): ``input_tokens`` counts *all* prompt tokens,
cache reads and cache writes included; ``output_tokens`` counts all generated tokens,
reasoning included. Adapters normalise each wire format to this.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any


class Status(enum.StrEnum):
    """How a client request ended."""

    OK = "ok"
    UPSTREAM_ERROR = "upstream_error"  # upstream answered with an error status
    UNAVAILABLE = "unavailable"  # no upstream could be reached
    CLIENT_DISCONNECT = "client_disconnect"  # client went away mid-request / mid-stream
    STREAM_CUT = "stream_cut"  # upstream cut the stream before it finished
    REJECTED = "rejected"  # refused by the gateway before any upstream call
    GATEWAY_ERROR = "gateway_error"  # a bug of ours; never for bad input
    IN_FLIGHT = "in_flight"  # sent upstream, not finished yet (the ledger's pending marker)
    INTERRUPTED = "interrupted"  # the gateway stopped before the request finished


@dataclass(slots=True)
class Principal:
    """Who is asking: a virtual key, the user it belongs to, and that user's team."""

    key_id: str
    user: str | None = None
    team: str | None = None
    key_name: str | None = None


@dataclass(slots=True)
class Tags:
    """Free attribution tags a request may carry (``x-costwarden-*`` headers)."""

    feature: str | None = None
    session: str | None = None
    env: str | None = None
    agent: str | None = None


@dataclass(slots=True)
class TokenUsage:
    """Token counts of one call, in the genai-prices convention (see module docstring)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False  # True when counted locally instead of reported by upstream

    def add(self, other: TokenUsage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.estimated = self.estimated or other.estimated

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True, frozen=True)
class Cost:
    """The price of one call, computed once from one price version."""

    total: Decimal
    input: Decimal
    output: Decimal
    source: str  # e.g. "genai-prices", "override:custom", "self-hosted"
    version: str  # e.g. "genai-prices 0.2.3 @ 2026-11-24", "config sha 1a2b…"


@dataclass(slots=True)
class Attempt:
    """One try against one upstream endpoint, inside one client request."""

    model: str  # public model name this try served (differs from request on fallback)
    provider: str
    endpoint: str  # endpoint id (name or api_base), never a secret
    upstream_model: str
    started_at: float  # monotonic seconds offset from the request start
    latency_ms: float = 0.0
    http_status: int | None = None
    error: str | None = None
    usage: TokenUsage | None = None
    cost: Cost | None = None
    reported_model: str | None = None
    upstream_request_id: str | None = None  # for reconciling with the provider's bill


@dataclass(slots=True)
class Saving:
    """Money and tokens one savings stage kept from being spent on this request.

    ``cost_saved`` is what the request would have cost without the stage minus what it did
    cost (negative when a cascade's escalation made it dearer); None when unknown (no price).
    ``tokens_saved``: tokens not sent or not generated (input tokens trimmed, or the answer's
    tokens served from cache). ``detail`` says how (similarity, tier, chosen model, ...).
    """

    kind: str  # "cache_exact" | "cache_semantic" | "cascade" | "router" | "trim"
    cost_saved: Decimal | None = None
    tokens_saved: int = 0
    detail: str | None = None


def new_request_id() -> str:
    return "cw-" + uuid.uuid4().hex


class RequestIds:
    """Request ids for one process: a random 64-bit prefix and a counter.

    Unique across processes and restarts (the prefix), sortable within a process, and about
    twenty times cheaper than a uuid4 per request on the hot path. Ids are not secrets: reading
    a record by id needs the admin key.
    """

    def __init__(self) -> None:
        self._prefix = "cw-" + os.urandom(8).hex()
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):08x}"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class UsageRecord:
    """Everything known about one client request; exactly one per request in the ledger."""

    request_id: str
    created_at: datetime
    api: str  # "chat.completions" | "completions" | "embeddings" | "messages"
    requested_model: str
    stream: bool = False
    principal: Principal | None = None
    tags: Tags = field(default_factory=Tags)
    resolved_model: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    reported_model: str | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)
    cost: Decimal | None = None  # None = unknown (model without a price), never silently 0
    cost_input: Decimal | None = None
    cost_output: Decimal | None = None
    price_source: str | None = None
    price_version: str | None = None
    latency_ms: float = 0.0
    upstream_latency_ms: float = 0.0
    status: Status = Status.OK
    http_status: int = 200
    error_type: str | None = None
    error_message: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    finished_at: datetime | None = None
    savings: list[Saving] = field(default_factory=list)

    @property
    def cost_saved(self) -> Decimal | None:
        """Sum of the savings' ``cost_saved`` (None when there are none or one is unknown)."""
        if not self.savings:
            return None
        total = Decimal(0)
        for saving in self.savings:
            if saving.cost_saved is None:
                return None
            total += saving.cost_saved
        return total

    def finish_costs(self) -> None:
        """Sum the priced attempts into the record's cost (None if any priced try is unknown)."""
        total = Decimal(0)
        cin = Decimal(0)
        cout = Decimal(0)
        usage = TokenUsage()
        unknown = False
        source: str | None = None
        version: str | None = None
        for attempt in self.attempts:
            if attempt.usage is not None:
                usage.add(attempt.usage)
                if attempt.cost is None:
                    unknown = unknown or attempt.usage.total_tokens > 0
                    continue
            if attempt.cost is not None:
                total += attempt.cost.total
                cin += attempt.cost.input
                cout += attempt.cost.output
                source, version = attempt.cost.source, attempt.cost.version
        self.usage = usage
        if unknown:
            self.cost = self.cost_input = self.cost_output = None
        else:
            self.cost, self.cost_input, self.cost_output = total, cin, cout
        self.price_source, self.price_version = source, version

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (Decimals as strings, datetimes as ISO 8601)."""
        data: dict[str, Any] = _jsonable(dataclasses.asdict(self))
        return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def record_from_dict(data: dict[str, Any]) -> UsageRecord:
    """Inverse of ``UsageRecord.to_dict`` (used by spool replay and tests)."""
    d = dict(data)
    d["created_at"] = datetime.fromisoformat(d["created_at"])
    if d.get("finished_at"):
        d["finished_at"] = datetime.fromisoformat(d["finished_at"])
    d["principal"] = Principal(**d["principal"]) if d.get("principal") else None
    d["tags"] = Tags(**(d.get("tags") or {}))
    d["usage"] = TokenUsage(**d["usage"])
    d["status"] = Status(d["status"])
    for name in ("cost", "cost_input", "cost_output"):
        d[name] = Decimal(d[name]) if d.get(name) is not None else None
    d["attempts"] = [_attempt_from_dict(a) for a in d.get("attempts") or []]
    d["savings"] = [_saving_from_dict(s) for s in d.get("savings") or []]
    return UsageRecord(**d)


def _saving_from_dict(data: dict[str, Any]) -> Saving:
    saved = data.get("cost_saved")
    return Saving(
        kind=data["kind"],
        cost_saved=Decimal(saved) if saved is not None else None,
        tokens_saved=int(data.get("tokens_saved") or 0),
        detail=data.get("detail"),
    )


def _attempt_from_dict(data: dict[str, Any]) -> Attempt:
    a = dict(data)
    a["usage"] = TokenUsage(**a["usage"]) if a.get("usage") else None
    if a.get("cost"):
        c = a["cost"]
        a["cost"] = Cost(
            total=Decimal(c["total"]),
            input=Decimal(c["input"]),
            output=Decimal(c["output"]),
            source=c["source"],
            version=c["version"],
        )
    return Attempt(**a)
