"""Where captured pairs live: the ``captured_pairs`` table of the ledger database
(migration ``0008_capture``), read and written through a connection of this package's own.

The ledger's ``Store`` is left alone: its SQLite worker thread and PostgreSQL pool serve the
request path's durable writes, and a capture batch or an export scan has no business queueing
behind them (nor they behind it). ``open_pair_store`` opens one small connection (SQLite: one
thread, WAL + busy timeout like the ledger's; PostgreSQL: a pool of at most two) from the same
``LedgerConfig``. The schema is the ledger's: ``Store.migrate`` creates the table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from costwarden.config import LedgerConfig

# The dialect's placeholder for the n-th bound value ("?" or "$n").
Marker = Callable[[int], str]

COLUMNS = (
    "request_id",
    "feature",
    "captured_at",
    "expires_at",
    "api",
    "model",
    "prompt_hash",
    "messages",
    "input_tokens",
    "output_tokens",
)


@dataclass(frozen=True, slots=True)
class CapturedPair:
    """One request and its answer, as stored: redacted, in fine-tuning message form."""

    request_id: str
    feature: str
    captured_at: datetime  # UTC
    expires_at: datetime  # UTC
    api: str
    model: str
    prompt_hash: str
    messages: list[dict[str, Any]]  # the conversation; the answer is the last message
    input_tokens: int
    output_tokens: int

    @property
    def answer(self) -> str:
        return str(self.messages[-1]["content"])


class PairStore(Protocol):
    async def insert(self, pairs: Sequence[CapturedPair]) -> None:
        """Store the pairs; a request already stored is skipped (replays are harmless)."""

    async def purge(self, now: datetime, cutoffs: Mapping[str, datetime]) -> int:
        """Delete pairs whose ``expires_at`` is at or before ``now``, and pairs of a feature in
        ``cutoffs`` captured before its cutoff (a retention shortened since); how many."""

    async def pairs(
        self, feature: str, now: datetime, since: datetime | None = None, limit: int | None = None
    ) -> list[CapturedPair]:
        """The feature's unexpired pairs captured at or after ``since``, newest first."""

    async def counts(self, now: datetime, since: datetime | None = None) -> dict[str, int]:
        """Unexpired pairs per feature (captured at or after ``since``)."""

    async def close(self) -> None: ...


# Both dialects: the purge's WHERE clause for ``cutoffs`` grows by one term per feature.
def purge_sql(marker: Marker, count: int) -> str:
    terms = ["expires_at <= " + marker(1)]
    terms += [
        f"(feature = {marker(2 + 2 * i)} AND captured_at < {marker(3 + 2 * i)})"
        for i in range(count)
    ]
    return "DELETE FROM captured_pairs WHERE " + " OR ".join(terms)  # noqa: S608


def select_sql(marker: Marker, since: bool, limit: bool) -> str:
    sql = f"SELECT {', '.join(COLUMNS)} FROM captured_pairs "  # noqa: S608
    sql += f"WHERE feature = {marker(1)} AND expires_at > {marker(2)}"
    next_index = 3
    if since:
        sql += f" AND captured_at >= {marker(next_index)}"
        next_index += 1
    sql += " ORDER BY captured_at DESC, request_id"
    if limit:
        sql += f" LIMIT {marker(next_index)}"
    return sql


def counts_sql(marker: Marker, since: bool) -> str:
    sql = f"SELECT feature, COUNT(*) FROM captured_pairs WHERE expires_at > {marker(1)}"  # noqa: S608
    if since:
        sql += f" AND captured_at >= {marker(2)}"
    return sql + " GROUP BY feature"


def insert_sql(marker: Marker, messages_cast: str = "") -> str:
    values = [marker(i) for i in range(1, len(COLUMNS) + 1)]
    values[COLUMNS.index("messages")] += messages_cast
    return (
        f"INSERT INTO captured_pairs ({', '.join(COLUMNS)}) VALUES ({', '.join(values)}) "  # noqa: S608
        "ON CONFLICT (request_id) DO NOTHING"
    )


async def open_pair_store(config: LedgerConfig) -> PairStore:
    """The pair store of the ledger ``config`` names (its schema must be migrated)."""
    if config.backend == "postgres":
        from costwarden.distill.storage_postgres import PostgresPairStore  # noqa: PLC0415

        assert config.postgres_dsn is not None  # LedgerConfig validates this
        return await PostgresPairStore.connect(config.postgres_dsn)
    from costwarden.distill.storage_sqlite import SqlitePairStore  # noqa: PLC0415

    return SqlitePairStore(config.sqlite_path)
