"""The storage interface every ledger backend implements, and the plain types it speaks.

Two backends implement ``Store``: SQLite (embedded default, ``ledger/sqlite.py``) and
PostgreSQL (replicas, ``ledger/postgres.py``). One test suite runs against both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import orjson
from pydantic import ValidationError

from costwarden.ledger.cube import CubeRow, Grain
from costwarden.ledger.rows import LedgerRow
from costwarden.ledger.watch import BilledPrice, PriceObservation, VersionSighting, WatchState
from costwarden.policy.config import BudgetRule
from costwarden.records import UsageRecord

# Report dimensions → the SQL expression each groups/filters on (same in both backends).
DIMENSIONS: Mapping[str, str] = {
    "user": "user_id",
    "team": "team",
    "model": "COALESCE(resolved_model, requested_model)",
    "feature": "feature",
    "env": "env",
    "key": "key_id",
    "day": "day",
    "provider": "provider",
    "status": "status",
}


class ReportQueryError(ValueError):
    """A report asked for an unknown dimension, or gave a filter value of the wrong form."""


def check_dimensions(names: Sequence[str] | Mapping[str, str]) -> None:
    unknown = sorted(set(names) - DIMENSIONS.keys())
    if unknown:
        known = ", ".join(DIMENSIONS)
        raise ReportQueryError(f"unknown report dimension(s) {unknown}; known: {known}")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """How far one spool segment has been copied into the store (a byte offset in it)."""

    segment: str
    byte_offset: int


@dataclass(frozen=True, slots=True)
class SpendRow:
    """One group of a spend report. ``cost`` sums only requests whose cost is known.

    ``requests`` counts every request on record, those still ``in_flight`` and those
    ``interrupted`` by a gateway crash included: each reached an upstream, which may bill it.
    Their cost is not known (NULL), so they count in ``unknown_cost_requests``, never as 0.
    """

    group: dict[str, str | None]  # dimension → value, in the order asked for
    requests: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int  # cache reads (already part of input_tokens)
    cost: Decimal
    unknown_cost_requests: int  # no price for the model, in flight, or interrupted

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-able dict: the group values, then the metrics; cost as exact text in
        positional notation (``0.000000123``, never ``1.23E-7``)."""
        return {
            **self.group,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "cost": f"{self.cost:f}",
            "unknown_cost_requests": self.unknown_cost_requests,
        }


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """An alert as the ledger keeps it for the dashboard (``alert_id`` is None until stored)."""

    at: datetime  # UTC
    kind: str
    severity: str
    title: str
    text: str
    scope: str
    dedup_key: str
    fields: dict[str, str]
    alert_id: int | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredAlert:
        """From an ``alert_events`` row of either backend (text or native types)."""
        at, fields = row["at"], row["fields"]
        return cls(
            alert_id=int(row["alert_id"]),
            at=at if isinstance(at, datetime) else datetime.fromisoformat(at),
            kind=row["kind"],
            severity=row["severity"],
            title=row["title"],
            text=row["text"],
            scope=row["scope"],
            dedup_key=row["dedup_key"],
            fields=orjson.loads(fields) if isinstance(fields, str | bytes) else dict(fields),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.alert_id,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "severity": self.severity,
            "title": self.title,
            "text": self.text,
            "scope": self.scope,
            "fields": self.fields,
        }


@dataclass(frozen=True, slots=True)
class VirtualKey:
    """A virtual key as listed: never the secret, never its hash."""

    key_id: str
    prefix: str  # first characters of the plaintext, enough to recognise it, not to use it
    user: str | None
    team: str | None
    name: str | None
    created_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_public(self) -> dict[str, Any]:
        """JSON-able view for the admin API and CLI (there is no secret in it to leak)."""
        return {
            "id": self.key_id,
            "prefix": self.prefix,
            "user": self.user,
            "team": self.team,
            "name": self.name,
            "metadata": self.metadata,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


class Store(Protocol):
    """A ledger backend. All methods are safe to call from the event loop."""

    async def migrate(self) -> None:
        """Apply the pending numbered migrations (concurrent callers are serialised)."""

    async def close(self) -> None: ...

    # -- usage records -------------------------------------------------------------------
    async def insert_rows(
        self, rows: Sequence[LedgerRow], checkpoint: Checkpoint | None = None
    ) -> None:
        """Insert rows and, in the same transaction, record ``checkpoint`` (so a replay after
        a crash is both complete and idempotent). A row whose request_id is already stored
        replaces it only if the row is final (not ``in_flight``) and the stored one is
        ``in_flight`` or ``interrupted``; otherwise it is skipped (the first final row wins)."""

    def row_values(self, line: Mapping[str, Any], spool_writer: str) -> Sequence[Any]:
        """The bound values (in ``COLUMNS`` order, this backend's types) of the row of one
        decoded spool line, for ``insert_values``. Runs on the event loop, so it is cheap: the
        copier calls it for every line. Raises ``KeyError``/``TypeError``/``ValueError`` on a
        malformed line."""

    async def insert_values(
        self, values: Sequence[Sequence[Any]], checkpoint: Checkpoint | None = None
    ) -> None:
        """``insert_rows`` for rows given as ``row_values`` made them."""

    async def interrupt_in_flight(self, spool_writer: str) -> int:
        """Mark ``spool_writer``'s rows still ``in_flight`` as ``interrupted`` (cost NULL);
        return how many. Only for a writer that is dead: its requests can never finish."""

    async def get_record(self, request_id: str) -> UsageRecord | None: ...

    async def count_records(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        filters: Mapping[str, str] | None = None,
    ) -> int: ...

    async def all_request_ids(self) -> set[str]:
        """Every stored request_id (for tests and consistency checks on small ledgers)."""

    async def spend(
        self,
        group_by: Sequence[str],
        since: datetime | None = None,
        until: datetime | None = None,
        filters: Mapping[str, str] | None = None,
    ) -> list[SpendRow]:
        """Spend grouped by ``group_by`` ⊆ DIMENSIONS, created_at in [since, until)."""

    async def savings_lists(self, since: datetime, until: datetime) -> list[str]:
        """The ``savings`` JSON of every request created in [since, until) that has one."""

    async def list_records(
        self,
        since: datetime | None,
        until: datetime | None,
        filters: Mapping[str, str] | None,
        limit: int,
        before: datetime | None = None,
    ) -> list[UsageRecord]:
        """Records created in [since, until) matching ``filters``, newest first, at most
        ``limit``; ``before`` pages on (records created strictly earlier)."""

    # -- rollups (ledger/cube.py) --------------------------------------------------------
    async def cube(
        self,
        grain: Grain,
        group_by: Sequence[str],
        since: datetime,
        until: datetime,
        filters: Mapping[str, str | None] | None = None,
    ) -> list[CubeRow]:
        """Cube rows of ``grain`` whose start is in [floor(since), until), summed per
        ``group_by`` ⊆ CUBE_DIMENSIONS; a filter value None matches an unset dimension."""

    async def refresh_rollups(self, max_hours: int = 48) -> int:
        """Recompute up to ``max_hours`` dirty hours (oldest first) and their days; return how
        many hours were recomputed (0: the cube is up to date)."""

    async def mark_rollups_dirty(self) -> int:
        """Mark every hour that has records dirty (a full rebuild on the next refreshes)."""

    # -- alert log and leader leases -----------------------------------------------------
    async def record_alerts(self, alerts: Sequence[StoredAlert]) -> None: ...

    async def list_alerts(
        self,
        since: datetime,
        until: datetime,
        kinds: Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[StoredAlert]:
        """Alerts at [since, until), newest first; ``kinds`` are prefixes (``"anomaly"``)."""

    async def try_lease(self, name: str, holder: str, ttl_s: float, now: float) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``now + ttl_s`` (epoch s);
        False while another holder's lease has not expired."""

    # -- spool checkpoints ---------------------------------------------------------------
    async def get_checkpoint(self, segment: str) -> int | None: ...

    async def delete_checkpoint(self, segment: str) -> None: ...

    # -- virtual keys --------------------------------------------------------------------
    async def create_key(self, key: VirtualKey, key_hash: str) -> None: ...

    async def list_keys(self, include_revoked: bool = False) -> list[VirtualKey]: ...

    async def revoke_key(self, key_id: str, revoked_at: datetime) -> bool:
        """Mark a key revoked; False if no active key has that id."""

    async def find_key_by_hash(self, key_hash: str) -> VirtualKey | None:
        """The key (revoked or not) whose secret hashes to ``key_hash``."""

    # -- budgets managed at run time -----------------------------------------------------
    async def list_budget_rules(self) -> list[BudgetRule]:
        """Every stored budget, ordered by name. Raises ``ValueError`` naming the row if one
        no longer validates (a rule that cannot be read must not silently stop applying)."""

    async def upsert_budget_rule(self, rule: BudgetRule) -> None:
        """Create the rule, or replace the one with the same name (``rule.name`` required)."""

    async def delete_budget_rule(self, name: str) -> bool:
        """Remove the named rule; False if there was none."""

    # -- price watch (ledger/watch.py, monitor/price_watch_job.py) -----------------------
    async def last_billed_prices(self, since: datetime, until: datetime) -> list[BilledPrice]:
        """Per model, the newest request created in [since, until) that one upstream attempt
        billed at a known price (``BilledPrice``); models without one are absent."""

    async def version_sightings(self, since: datetime, until: datetime) -> list[VersionSighting]:
        """Requests created in [since, until) whose reported model is not the upstream model
        sent, counted per (model, upstream model, reported model)."""

    async def price_watch_state(self) -> WatchState:
        """The rate cards and alerted versions the price watch saved."""

    async def save_price_watch_state(
        self, observations: Sequence[PriceObservation], sightings: Sequence[VersionSighting]
    ) -> None:
        """Replace the cards of those models, and add those (model, reported) pairs (one
        transaction)."""


def budget_rule_name(rule: BudgetRule) -> str:
    """The id of a stored rule: its name, which a stored rule must have."""
    if not rule.name:
        raise ValueError("a budget stored at run time needs a name (it is its id)")
    return rule.name


def budget_rule_json(rule: BudgetRule) -> str:
    """The stored form: the rule without its name (the row's key holds that), Decimals as
    exact strings."""
    return rule.model_dump_json(exclude={"name"})


def budget_rule_from_json(name: str, text: str) -> BudgetRule:
    try:
        return BudgetRule.model_validate({**orjson.loads(text), "name": name})
    except (ValidationError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"stored budget {name!r} is not a valid budget rule: {exc}") from exc


def sort_spend_rows(rows: list[SpendRow], group_by: Sequence[str]) -> list[SpendRow]:
    """Order by group values, None first, identically for every backend."""

    def key(row: SpendRow) -> tuple[tuple[bool, str], ...]:
        return tuple((row.group[g] is not None, row.group[g] or "") for g in group_by)

    return sorted(rows, key=key)
