"""``Admitter.reserve``: a lone request is admitted at once, concurrent ones in one batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from costwarden.errors import BudgetExceeded
from costwarden.gateway.services import Services, build_services
from costwarden.policy.engine import Admission
from costwarden.records import Principal, Tags, TokenUsage, UsageRecord, utcnow
from tests.gateway.conftest import base_settings, model
from tests.gateway.test_controls import with_policy

CHAT = "chat.completions"
ALICE = Principal(key_id="k-alice", user="alice", team="ml")


class Slot:
    admission: Admission | None = None


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    # gpt-4o-mini: $0.15 / $0.60 per M tokens; 1,000 output tokens reserve $0.0006 each.
    settings = with_policy(
        base_settings(tmp_path, [model("gpt-4o-mini", "http://127.0.0.1:9/v1")]),
        {"budgets": [{"name": "all", "scope": "global", "limit_usd": "0.0015"}]},
    )
    built = await build_services(settings)
    yield built
    await built.close()


def ask(n: int) -> tuple[str, dict[str, Any], bytes, UsageRecord, int]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"step {n}"}]}
    record = UsageRecord(
        request_id=f"r{n}",
        created_at=utcnow(),
        api=CHAT,
        requested_model="gpt-4o-mini",
        principal=ALICE,
        tags=Tags(),
        resolved_model="gpt-4o-mini",
    )
    return CHAT, body, b"{}", record, 1000


async def test_a_request_alone_is_admitted_without_waiting(services: Services) -> None:
    admitter, slot = services.admitter(), Slot()
    pending = admitter.reserve(*ask(1), slot=slot)
    with pytest.raises(StopIteration) as finished:
        pending.send(None)  # ran to the end in one step: no hand-over to a batch
    assert finished.value.value is slot.admission
    assert slot.admission is not None and slot.admission.reserved_tokens > 1000


async def test_requests_in_flight_together_are_admitted_in_one_batch_in_order(
    services: Services,
) -> None:
    admitter = services.admitter()
    await admitter.reserve(*ask(1), slot=Slot())  # alone, and still in flight
    slots = [Slot(), Slot()]
    tasks = [asyncio.create_task(admitter.reserve(*ask(n), slot=s)) for n, s in enumerate(slots)]
    await asyncio.sleep(0)  # both ran up to the batch
    assert [s.admission for s in slots] == [None, None]  # queued, not admitted yet
    results = await asyncio.gather(*tasks, return_exceptions=True)
    # $0.0015 holds two worst cases of ~$0.0006: the one in flight and the next in order.
    assert isinstance(results[0], Admission) and results[0] is slots[0].admission
    assert isinstance(results[1], BudgetExceeded) and slots[1].admission is None


async def test_a_refusal_of_a_request_alone_is_raised_at_once(services: Services) -> None:
    admitter = services.admitter()
    for n in range(2):
        slot = Slot()
        await admitter.reserve(*ask(n), slot=slot)
        assert slot.admission is not None
        admitter.settle(slot.admission, spent(ask(n)[3], "0.0006"))  # finished: alone again
    await services.settlements.flush()
    with pytest.raises(BudgetExceeded):
        admitter.reserve(*ask(3), slot=Slot()).send(None)


def spent(record: UsageRecord, usd: str) -> UsageRecord:
    record.cost = Decimal(usd)
    record.usage = TokenUsage(input_tokens=10, output_tokens=900)
    return record
