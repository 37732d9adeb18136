"""Shared by the price and version watch tests: settings, realistically billed records, and a
job whose alerts land in a list."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from costwarden.config import Settings
from costwarden.ledger import Store, row_from_record
from costwarden.monitor.alerts import Alert, AlertRouter
from costwarden.monitor.price_watch_job import PriceWatchJob
from costwarden.pricing.catalog import PriceBook
from costwarden.pricing.resolved import ResolvedPrice
from costwarden.records import UsageRecord
from tests.ledger.factory import make_record

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
MTOK = Decimal(1_000_000)
ENDPOINT = ({"id": "ep-1", "api_base": "http://127.0.0.1:9/v1"},)


class Collector:
    """An alert sink that keeps what it is given."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def start(self) -> None:
        return None

    def emit(self, alert: Alert) -> None:
        self.alerts.append(alert)

    async def close(self) -> None:
        return None


def model(name: str, pricing: dict[str, Any] | None = None) -> dict[str, Any]:
    """A model config served at one local endpoint; catalog-priced unless ``pricing`` says."""
    return {"name": name, "endpoints": list(ENDPOINT), "pricing": pricing or {"mode": "catalog"}}


def custom(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"mode": "custom", "custom": list(entries)}


def settings(*models: dict[str, Any], pins: dict[str, str] | None = None) -> Settings:
    return Settings.model_validate({"models": list(models), "policy": {"pins": pins or {}}})


def watch(config: Settings, store: Store) -> tuple[PriceWatchJob, Collector]:
    """A job whose router never suppresses (cool-down 0): repeats must be the job's own doing."""
    sink = Collector()
    return PriceWatchJob(config, store, AlertRouter([sink], cooldown_s=0)), sink


def price_of(config: Settings, name: str, at: datetime) -> ResolvedPrice:
    found = config.model(name)
    assert found is not None
    price = PriceBook(config).price_for(found, found.endpoints[0], at)
    assert price is not None
    return price


def billed(
    index: int,
    name: str,
    at: datetime,
    price: ResolvedPrice,
    **fields: Any,
) -> UsageRecord:
    """Request ``index`` of model ``name`` (input 100+index of which 10 cached, output 20),
    billed by ``price`` as the gateway bills: cost, its split, source and version."""
    record = make_record(index, model=name, created_at=at, **fields)
    cost = price.cost(record.usage)
    record.cost, record.cost_input, record.cost_output = cost.total, cost.input, cost.output
    record.price_source, record.price_version = cost.source, cost.version
    return record


async def store_records(store: Store, records: list[UsageRecord]) -> None:
    await store.insert_rows([row_from_record(record) for record in records])


def delta(records: list[UsageRecord], plain: str, cached: str, output: str) -> Decimal:
    """The records' tokens priced at per-MTok rate differences (plain input, cache read, output)."""
    total = Decimal(0)
    for record in records:
        usage = record.usage
        total += (usage.input_tokens - usage.cache_read_tokens) * Decimal(plain)
        total += usage.cache_read_tokens * Decimal(cached) + usage.output_tokens * Decimal(output)
    return total / MTOK
