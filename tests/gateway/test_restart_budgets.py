"""A restarted single-process gateway (in-process counters) starts its budgets from the spend
the ledger already holds for the period, instead of handing every budget its whole cap again."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from costwarden.errors import BudgetExceeded
from costwarden.gateway.services import build_services
from costwarden.ledger.rows import row_from_record
from costwarden.records import utcnow
from tests.gateway.conftest import base_settings, model
from tests.gateway.test_controls import with_policy
from tests.ledger.factory import make_record
from tests.monitor.test_alerts_webhook import Slot, ask

CAP = Decimal("0.001")


async def test_a_restart_does_not_reset_a_budget(tmp_path: Path) -> None:
    settings = with_policy(
        base_settings(tmp_path, [model("gpt-4o-mini", "http://127.0.0.1:9/v1")]),
        {"budgets": [{"name": "all", "scope": "global", "limit_usd": str(CAP)}]},
    )
    first = await build_services(settings, {})
    try:  # the previous run spent 90 % of the cap today
        spent = make_record(0, created_at=utcnow(), cost=CAP * Decimal("0.9"))
        await first.ledger.store.insert_rows([row_from_record(spent)])
    finally:
        await first.close()

    restarted = await build_services(settings, {})
    try:
        with pytest.raises(BudgetExceeded):  # a ~$0.0006 worst case no longer fits
            await restarted.admitter().reserve(*ask(1), slot=Slot())
    finally:
        await restarted.close()


async def test_an_empty_ledger_leaves_the_whole_cap(tmp_path: Path) -> None:
    settings = with_policy(
        base_settings(tmp_path, [model("gpt-4o-mini", "http://127.0.0.1:9/v1")]),
        {"budgets": [{"name": "all", "scope": "global", "limit_usd": str(CAP)}]},
    )
    services = await build_services(settings, {})
    try:
        await services.admitter().reserve(*ask(1), slot=Slot())  # fits: nothing spent yet
    finally:
        await services.close()
