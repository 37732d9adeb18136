"""The scheduled price watch on a seeded ledger (SQLite and PostgreSQL): a dated price taking
effect between two runs, a config edit and a catalog upgrade found from the last bills on a
first run; each is one alert with its weekly impact computed here by hand, and never again."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from costwarden.ledger import Store
from costwarden.ledger.sqlite import SqliteStore
from costwarden.ledger.watch import last_billed_sql, version_sightings_sql
from costwarden.monitor.price_watch_job import PriceWatchJob
from costwarden.pricing.resolved import ResolvedPrice, TokenRates, per_token
from costwarden.reports import format_money
from tests.monitor.watch_support import (
    NOW,
    billed,
    custom,
    delta,
    model,
    price_of,
    settings,
    store_records,
    watch,
)

OLD = {"input_per_mtok": "2", "output_per_mtok": "8", "cache_read_per_mtok": "1"}
NEW = {"input_per_mtok": "3", "output_per_mtok": "12", "cache_read_per_mtok": "0.5"}


async def test_a_dated_price_taking_effect_between_runs_alerts_once(ledger_store: Store) -> None:
    changed_at = NOW - timedelta(hours=2)
    config = settings(model("house", custom(OLD, {**NEW, "effective_from": changed_at})))
    old_price = price_of(config, "house", changed_at - timedelta(seconds=1))
    week = [billed(i, "house", NOW - timedelta(hours=3 + 20 * i), old_price) for i in range(4)]
    last_month = billed(4, "house", NOW - timedelta(days=9), old_price)
    await store_records(ledger_store, [*week, last_month])
    job, sink = watch(config, ledger_store)

    await job.run(NOW - timedelta(hours=4))  # before the change: only remembers the card
    assert sink.alerts == []
    await job.run(NOW)

    (alert,) = sink.alerts
    new_version = price_of(config, "house", NOW).version
    assert (alert.kind, alert.severity, alert.scope) == ("price.change", "warning", "house")
    assert alert.dedup_key == f"price.change:house:{new_version}"
    # 366 plain input tokens +$1, 40 cache reads -$0.5, 80 output +$4 per MTok.
    expected = delta(week, "1", "-0.5", "4")
    assert expected == Decimal("0.000666")
    assert alert.fields["impact per week"] == format_money(expected) == "$0.000666"
    assert alert.fields["old rates /MTok"] == "in $2 / out $8 / cache read $1"
    assert alert.fields["new rates /MTok"] == "in $3 / out $12 / cache read $0.5"
    assert alert.fields["effective from"] == changed_at.isoformat()
    assert alert.fields["old version"] == old_price.version
    assert alert.at == NOW.timestamp()

    await job.run(NOW + timedelta(hours=1))
    restarted, again = watch(config, ledger_store)  # a new leader: state is in the store
    await restarted.run(NOW + timedelta(hours=2))
    assert len(sink.alerts) == 1 and again.alerts == []


async def test_a_config_edit_is_found_from_the_last_bills_on_a_first_run(
    ledger_store: Store,
) -> None:
    before = settings(
        model("house", custom({"input_per_mtok": "2", "output_per_mtok": "8"})),
        model("quiet", custom({"input_per_mtok": "1", "output_per_mtok": "1"})),
    )
    after = settings(
        model("house", custom({"input_per_mtok": "3", "output_per_mtok": "12"})),
        model("quiet", custom({"input_per_mtok": "1", "output_per_mtok": "2"})),
    )
    house_price, quiet_price = price_of(before, "house", NOW), price_of(before, "quiet", NOW)
    house = [
        billed(i, "house", NOW - timedelta(minutes=10 + 40 * i), house_price) for i in range(4)
    ]
    # Its only bill is ten hours old: found by the wider window after the newest hour.
    quiet = [billed(7, "quiet", NOW - timedelta(hours=10), quiet_price)]
    await store_records(ledger_store, [*house, *quiet])
    job, sink = watch(after, ledger_store)

    await job.run(NOW)

    by_model = {alert.scope: alert for alert in sink.alerts}
    assert sorted(by_model) == ["house", "quiet"]
    alert = by_model["house"]
    assert alert.kind == "price.change"
    # Without a cache price cache reads are input: every input token +$1, output +$4 per MTok.
    expected = delta(house, "1", "1", "4")
    assert expected == Decimal("0.000726")
    assert alert.fields["impact per week"] == format_money(expected)
    assert alert.fields["old rates /MTok"] == "in $2 / out $8 / cache read = input"
    assert alert.fields["old rates"].startswith("implied by the last bill")
    assert by_model["quiet"].fields["impact per week"] == format_money(delta(quiet, "0", "0", "1"))

    await job.run(NOW + timedelta(hours=1))
    assert len(sink.alerts) == 2


async def test_a_catalog_upgrade_has_its_own_kind_and_a_relabel_alone_is_no_change(
    ledger_store: Store,
) -> None:
    config = settings(model("gpt-4o"), model("gpt-4o-mini"))
    old_catalog = _old_catalog_price(
        "gpt-4o",
        TokenRates(per_token(Decimal(5)), per_token(Decimal(15)), per_token(Decimal("2.5"))),
    )
    mini_today = price_of(config, "gpt-4o-mini", NOW)
    relabelled = _old_catalog_price("gpt-4o-mini", mini_today.rates)
    gpt4o = [billed(i, "gpt-4o", NOW - timedelta(minutes=5 + i), old_catalog) for i in range(4)]
    mini = [billed(9, "gpt-4o-mini", NOW - timedelta(minutes=3), relabelled)]
    await store_records(ledger_store, [*gpt4o, *mini])
    job, sink = watch(config, ledger_store)

    await job.run(NOW)

    (alert,) = sink.alerts
    assert (alert.kind, alert.scope, alert.severity) == ("price.catalog_upgrade", "gpt-4o", "info")
    today = price_of(config, "gpt-4o", NOW)
    assert alert.dedup_key == f"price.catalog_upgrade:gpt-4o:{today.version}"
    # genai-prices today: $2.5 in, $1.25 cache read, $10 out; billed at $5 / $2.5 / $15.
    expected = delta(gpt4o, "-2.5", "-1.25", "-5")
    assert expected == Decimal("-0.001365")
    assert alert.fields["impact per week"] == format_money(expected) == "-$0.001365"
    assert alert.fields["old rates /MTok"] == "in $5 / out $15 / cache read $2.5"

    await job.run(NOW + timedelta(hours=1))
    assert len(sink.alerts) == 1


async def test_a_model_without_bills_or_history_is_only_remembered(ledger_store: Store) -> None:
    config = settings(model("house", custom(OLD)))
    job, sink = watch(config, ledger_store)
    await job.run(NOW)
    state = await ledger_store.price_watch_state()
    seen = state.prices["house"]
    assert (seen.input_per_mtok, seen.output_per_mtok, seen.cache_read_per_mtok) == (2, 8, 1)
    assert seen.observed_at == NOW and sink.alerts == []


async def test_the_watch_queries_read_the_created_at_index(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "ledger.db")
    await store.migrate()
    await store.close()
    marker = "?"
    queries = (
        last_billed_sql(lambda _i: marker, "json_array_length(attempts) = 1"),
        version_sightings_sql(lambda _i: marker),
    )
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        for sql in queries:
            plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", ("a", "b")))
            assert "USING INDEX usage_records_created_at" in plan
            assert "SCAN usage_records" not in plan
    assert PriceWatchJob.name == "price_watch"


def _old_catalog_price(name: str, rates: TokenRates) -> ResolvedPrice:
    """What an older genai-prices package billed ``name`` at."""
    return ResolvedPrice("genai-prices", f"genai-prices 0.2.1 openai/{name}", rates)
