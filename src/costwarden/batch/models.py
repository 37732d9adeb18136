"""The plain types the batch queue speaks: jobs, items, claims, outcomes, counts."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from costwarden.records import Principal, Tags


class ItemStatus(enum.StrEnum):
    QUEUED = "queued"  # waiting (or waiting for its retry time)
    LEASED = "leased"  # a worker holds it until lease_until (heartbeats extend it)
    SUBMITTED = "submitted"  # inside a provider Batch API submission (the submission is leased)
    DONE = "done"
    FAILED = "failed"  # attempts used up, or an error no retry can fix
    CANCELLED = "cancelled"  # its job went over the failure budget before it was sent


class JobStatus(enum.StrEnum):
    OPEN = "open"  # gateway intake: takes new items for as long as the gateway sends them
    RUNNING = "running"  # a submitted file: finishes once every item is done or failed
    DONE = "done"  # finished with a failed share within the budget
    FAILED = "failed"  # the failed share went over the budget (remaining items cancelled)


TERMINAL_ITEMS = frozenset({ItemStatus.DONE, ItemStatus.FAILED, ItemStatus.CANCELLED})
WORKING_JOBS = (JobStatus.OPEN.value, JobStatus.RUNNING.value)


def new_id(prefix: str) -> str:
    """Random ids: unguessable (an item id is what a gateway client polls) and unique across
    processes and machines without coordination."""
    return f"{prefix}_{os.urandom(12).hex()}"


@dataclass(frozen=True, slots=True)
class JobSpec:
    model: str
    api: str  # "chat.completions" | "completions" | "embeddings"
    mode: str  # "direct" | "batch_api"
    failure_budget: float
    max_attempts: int
    name: str | None = None
    source: str = "cli"  # "cli" | "gateway"
    principal: Principal | None = None
    tags: Tags = field(default_factory=Tags)


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    name: str | None
    model: str
    api: str
    mode: str
    source: str
    status: str
    failure_budget: float
    max_attempts: int
    principal: Principal | None
    tags: Tags
    created_at: float
    finished_at: float | None
    note: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        principal = None
        if row["key_id"] is not None or row["user_id"] is not None:
            principal = Principal(
                key_id=row["key_id"] or "",
                user=row["user_id"],
                team=row["team"],
                key_name=row["key_name"],
            )
        return cls(
            job_id=row["job_id"],
            name=row["name"],
            model=row["model"],
            api=row["api"],
            mode=row["mode"],
            source=row["source"],
            status=row["status"],
            failure_budget=float(row["failure_budget"]),
            max_attempts=int(row["max_attempts"]),
            principal=principal,
            tags=Tags(feature=row["feature"], env=row["env"]),
            created_at=float(row["created_at"]),
            finished_at=row["finished_at"],
            note=row["note"],
        )


@dataclass(frozen=True, slots=True)
class NewItem:
    custom_id: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ClaimedItem:
    """An item a worker now holds: valid while ``lease_token`` is the item's token."""

    item_id: str
    job_id: str
    custom_id: str
    body: dict[str, Any]
    attempt: int  # 1 for the first try; a killed worker's try counts too
    lease_token: str

    @property
    def request_id(self) -> str:
        """The ledger id of this try: deterministic, so a replay or a catch-up of the same
        try's record is stored once, and another try is another record."""
        return f"cwb-{self.item_id.removeprefix('bi_')}-{self.attempt}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one try of an item ended, as the worker reports it to the queue."""

    item_id: str
    lease_token: str
    status: ItemStatus  # DONE, FAILED, or QUEUED (a retry at ``retry_at``)
    request_id: str
    http_status: int | None = None
    result: str | None = None  # the response body (JSON text) of a DONE item
    error: str | None = None  # JSON text {"code", "message"} of a failed try
    cost: Decimal | None = None
    record: str | None = None  # the try's final ledger line (DONE only), for catch-up
    retry_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ItemView:
    """An item as reports, the results file and the gateway's poll endpoint see it."""

    item_id: str
    job_id: str
    seq: int
    custom_id: str
    status: str
    attempts: int
    http_status: int | None
    result: str | None
    error: str | None
    request_id: str | None
    cost: Decimal | None


@dataclass(frozen=True, slots=True)
class JobCounts:
    total: int = 0
    queued: int = 0
    leased: int = 0
    submitted: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    cost: Decimal = Decimal(0)

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.cancelled

    @property
    def pending(self) -> int:
        return self.queued + self.leased + self.submitted

    @property
    def failed_share(self) -> float:
        return (self.failed + self.cancelled) / self.total if self.total else 0.0


@dataclass(frozen=True, slots=True)
class Submission:
    """A provider Batch API submission a worker holds (its lease covers its items)."""

    submission_id: str
    job_id: str
    status: str  # "preparing" (no provider batch yet) | "submitted"
    provider_batch_id: str | None
    lease_token: str
    items: tuple[ClaimedItem, ...]
    resumed: bool = False  # taken over from a worker whose lease ran out
