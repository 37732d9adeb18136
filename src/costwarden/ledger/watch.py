"""What the price watch reads from the ledger and keeps in the store (migration 0006).

Read from ``usage_records``, always over a bounded ``created_at`` range (the index), never the
whole table:

- ``BilledPrice``: per model, the newest request in a window billed from one upstream attempt
  at a known price — its price version and moment, and the tokens and cost that show the rates
  it was billed at (a request of several attempts, a cascade's, mixes prices, so it is skipped);
- ``VersionSighting``: per (model, upstream model, reported model), requests that upstream
  answered as another model than the one sent.

Kept by the watch itself, so that a restart or a new leader replica remembers what it saw:

- ``PriceObservation``: the rate card each configured model was last seen priced at;
- the (model, reported version) pairs already alerted on.

The SQL is shared by both backends; only constant fragments are formatted into it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from costwarden.ledger.rows import as_utc
from costwarden.records import TokenUsage

_MODEL = "COALESCE(resolved_model, requested_model)"
_BILLED_COLUMNS = (
    "price_source, price_version, created_at, input_tokens, output_tokens, "
    "cache_read_tokens, cache_write_tokens, cost_input, cost_output"
)
_OBSERVATION_COLUMNS = (
    "model, endpoint, price_source, price_version, input_per_mtok, output_per_mtok, "
    "cache_read_per_mtok, observed_at"
)
SELECT_OBSERVATIONS = f"SELECT {_OBSERVATION_COLUMNS} FROM price_observations"  # noqa: S608
SELECT_SIGHTINGS = "SELECT model, reported_model, first_seen FROM version_sightings"


@dataclass(frozen=True, slots=True)
class BilledPrice:
    """The newest single-attempt request of ``model`` in a window with a known cost."""

    model: str
    price_source: str | None
    price_version: str
    billed_at: datetime
    input_tokens: int  # cache reads and writes included, as in TokenUsage
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_input: Decimal
    cost_output: Decimal

    def usage(self) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
        )


@dataclass(frozen=True, slots=True)
class VersionSighting:
    """Requests of ``model`` sent as ``upstream_model`` that upstream reported as another."""

    model: str
    upstream_model: str | None
    reported_model: str
    requests: int
    first_seen: datetime


@dataclass(frozen=True, slots=True)
class PriceObservation:
    """The rate card (USD per MTok) a model was priced at, first seen at ``observed_at``."""

    model: str
    endpoint: str
    price_source: str
    price_version: str
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cache_read_per_mtok: Decimal | None  # None: cache reads are billed as input
    observed_at: datetime


@dataclass(frozen=True, slots=True)
class WatchState:
    """What the watch remembers: the last card per model, and the versions already alerted."""

    prices: Mapping[str, PriceObservation]
    versions: frozenset[tuple[str, str]]  # (model, reported model)


def last_billed_sql(marker: Callable[[int], str], one_attempt: str) -> str:
    """Binds (since, until); ``one_attempt`` is the dialect's "attempts holds one try" test.

    ROW_NUMBER over the window's rows only: the ``created_at`` range is read off the index.
    """
    return (
        f"SELECT model, {_BILLED_COLUMNS} FROM ("  # noqa: S608
        f"SELECT {_MODEL} AS model, {_BILLED_COLUMNS}, ROW_NUMBER() OVER ("
        f"PARTITION BY {_MODEL} ORDER BY created_at DESC, request_id DESC) AS position "
        f"FROM usage_records WHERE created_at >= {marker(1)} AND created_at < {marker(2)} "
        "AND price_version IS NOT NULL AND cost_input IS NOT NULL AND cost_output IS NOT NULL "
        f"AND {one_attempt}) AS recent WHERE position = 1"
    )


def version_sightings_sql(marker: Callable[[int], str]) -> str:
    """Binds (since, until). Unpinned models whose provider reports a dated version come back
    too (a handful of groups); the watch keeps those whose model is pinned."""
    return (
        f"SELECT {_MODEL}, upstream_model, reported_model, COUNT(*), MIN(created_at) "  # noqa: S608
        f"FROM usage_records WHERE created_at >= {marker(1)} AND created_at < {marker(2)} "
        "AND reported_model IS NOT NULL AND reported_model <> COALESCE(upstream_model, '') "
        f"GROUP BY {_MODEL}, upstream_model, reported_model"
    )


def upsert_observation_sql(marker: Callable[[int], str]) -> str:
    values = ", ".join(marker(index) for index in range(1, 9))
    updates = ", ".join(
        f"{column} = excluded.{column}" for column in _OBSERVATION_COLUMNS.split(", ")[1:]
    )
    return (
        f"INSERT INTO price_observations ({_OBSERVATION_COLUMNS}) VALUES ({values}) "  # noqa: S608
        f"ON CONFLICT (model) DO UPDATE SET {updates}"
    )


def insert_sighting_sql(marker: Callable[[int], str]) -> str:
    return (
        "INSERT INTO version_sightings (model, reported_model, first_seen) "  # noqa: S608
        f"VALUES ({marker(1)}, {marker(2)}, {marker(3)}) "
        "ON CONFLICT (model, reported_model) DO NOTHING"
    )


def billed_price(values: Sequence[Any]) -> BilledPrice:
    """A row of ``last_billed_sql`` (SQLite text or PostgreSQL native types)."""
    model, source, version, created, cin, cout, cread, cwrite, cost_in, cost_out = values
    return BilledPrice(
        model=str(model),
        price_source=source,
        price_version=str(version),
        billed_at=_moment(created),
        input_tokens=int(cin),
        output_tokens=int(cout),
        cache_read_tokens=int(cread),
        cache_write_tokens=int(cwrite),
        cost_input=Decimal(cost_in),
        cost_output=Decimal(cost_out),
    )


def version_sighting(values: Sequence[Any]) -> VersionSighting:
    """A row of ``version_sightings_sql``."""
    model, upstream, reported, requests, first_seen = values
    return VersionSighting(str(model), upstream, str(reported), int(requests), _moment(first_seen))


def watch_state(
    observations: Sequence[Sequence[Any]], sightings: Sequence[Sequence[Any]]
) -> WatchState:
    prices = {str(row[0]): _observation(row) for row in observations}
    versions = frozenset((str(row[0]), str(row[1])) for row in sightings)
    return WatchState(prices, versions)


def observation_values(
    observation: PriceObservation,
    time_value: Callable[[datetime], Any],
    money_value: Callable[[Decimal], Any],
) -> tuple[Any, ...]:
    """Bound values of ``upsert_observation_sql`` in the backend's types."""
    cache = observation.cache_read_per_mtok
    return (
        observation.model,
        observation.endpoint,
        observation.price_source,
        observation.price_version,
        money_value(observation.input_per_mtok),
        money_value(observation.output_per_mtok),
        None if cache is None else money_value(cache),
        time_value(observation.observed_at),
    )


def sighting_values(
    sighting: VersionSighting, time_value: Callable[[datetime], Any]
) -> tuple[Any, ...]:
    return (sighting.model, sighting.reported_model, time_value(sighting.first_seen))


def _observation(row: Sequence[Any]) -> PriceObservation:
    model, endpoint, source, version, input_rate, output_rate, cache_rate, observed = row
    return PriceObservation(
        model=str(model),
        endpoint=str(endpoint),
        price_source=str(source),
        price_version=str(version),
        input_per_mtok=Decimal(input_rate),
        output_per_mtok=Decimal(output_rate),
        cache_read_per_mtok=None if cache_rate is None else Decimal(cache_rate),
        observed_at=_moment(observed),
    )


def _moment(value: datetime | str) -> datetime:
    # SQLite hands timestamps back as the ISO text it stores; PostgreSQL as datetimes.
    return as_utc(value if isinstance(value, datetime) else datetime.fromisoformat(value))
